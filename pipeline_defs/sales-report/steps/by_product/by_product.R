# Branch 2: revenue and transaction count per product, written to summary.json.
suppressPackageStartupMessages({
  library(optparse)
  library(jsonlite)
})

options <- parse_args(OptionParser(option_list = list(
  make_option("--sales", type = "character"),
  make_option("--out", type = "character"),
  make_option("--simulate-work", dest = "simulate_work", type = "double", default = 0)
)))
path <- file.path(options$sales, "transactions.csv")
if (!file.exists(path)) stop(sprintf("input file not found: %s", path))
sales <- read.csv(path, stringsAsFactors = FALSE)

products <- sort(unique(sales$product))
groups <- lapply(products, function(p) {
  rows <- sales[sales$product == p, ]
  # Cents as doubles: sums stay exact far beyond R's 32-bit integer range.
  list(revenue_cents = sum(as.numeric(rows$amount_cents)), transactions = nrow(rows))
})
names(groups) <- products
Sys.sleep(options$simulate_work)

summary <- list(
  branch = "by_product",
  total_cents = sum(as.numeric(sales$amount_cents)),
  transactions = nrow(sales),
  groups = groups
)
dir.create(options$out, recursive = TRUE, showWarnings = FALSE)
write_json(summary, file.path(options$out, "summary.json"), auto_unbox = TRUE, pretty = TRUE,
           digits = NA)
cat(sprintf("%d products, total %.2f\n", length(products), summary$total_cents / 100))
