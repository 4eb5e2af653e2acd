# Train a GBM churn classifier with caret on train.csv; save the model and the test-set scores.
suppressPackageStartupMessages({
  library(optparse)
  library(caret)
  library(gbm)
  library(jsonlite)
})

options <- parse_args(OptionParser(option_list = list(
  make_option("--data", type = "character", help = "folder with train.csv and test.csv"),
  make_option("--n-trees", dest = "n_trees", type = "integer", default = 100),
  make_option("--learning-rate", dest = "learning_rate", type = "double", default = 0.1),
  make_option("--seed", type = "integer", default = 42),
  make_option("--out", type = "character", help = "output folder")
)))
for (name in c("data", "out")) {
  if (is.null(options[[name]])) stop(sprintf("--%s is required", name))
}

read_table <- function(file) {
  path <- file.path(options$data, file)
  if (!file.exists(path)) stop(sprintf("input file not found: %s", path))
  table <- read.csv(path, stringsAsFactors = FALSE)
  table$contract <- factor(table$contract, levels = c("monthly", "one_year", "two_year"))
  table$churn <- factor(table$churn, levels = c("no", "yes"))
  table
}

train_set <- read_table("train.csv")
test_set <- read_table("test.csv")
cat(sprintf("training on %d rows, scoring %d rows\n", nrow(train_set), nrow(test_set)))

set.seed(options$seed)
fit <- train(
  churn ~ tenure_months + monthly_charges + support_calls + contract,
  data = train_set,
  method = "gbm",
  distribution = "bernoulli",
  verbose = FALSE,
  trControl = trainControl(method = "cv", number = 3, classProbs = TRUE),
  tuneGrid = expand.grid(
    n.trees = options$n_trees,
    interaction.depth = c(1, 2),
    shrinkage = options$learning_rate,
    n.minobsinnode = 10
  )
)
cat(sprintf("best interaction.depth %d, cv accuracy %.3f\n",
            fit$bestTune$interaction.depth, max(fit$results$Accuracy)))

dir.create(options$out, recursive = TRUE, showWarnings = FALSE)
saveRDS(fit, file.path(options$out, "model.rds"))
scores <- data.frame(
  churn = test_set$churn,
  probability = predict(fit, newdata = test_set, type = "prob")[["yes"]]
)
write.csv(scores, file.path(options$out, "test_scores.csv"), row.names = FALSE)
write_json(
  list(method = "gbm", n_trees = options$n_trees, learning_rate = options$learning_rate,
       best_tune = as.list(fit$bestTune), train_rows = nrow(train_set)),
  file.path(options$out, "model.json"), auto_unbox = TRUE, pretty = TRUE
)
cat(sprintf("saved model and %d test scores to %s\n", nrow(scores), options$out))
