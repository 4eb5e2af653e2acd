"""A probe program for the recording harness (tests/program/mock_program.py): a component with
known children, a known explicit and a known implicit dependency, and every resource option the
program tests read, so a test can check that the recording still sees each of them.

Run by tests/program/test_recording_mocks.py as `mock_program.py --program <this folder> ...`."""

from __future__ import annotations

import pulumi

GROUP = "azure-native:resources:ResourceGroup"
ACCOUNT = "azure-native:storage:StorageAccount"
VAULT = "azure-native:keyvault:Vault"


class Probe(pulumi.ComponentResource):
    """Three children: a group; an account waiting for it explicitly (`depends_on`); a vault
    waiting for it implicitly (an input derived from the group's id) and for the account
    explicitly."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("azureml-pipelines:probe:Probe", name, None, opts)
        group = pulumi.CustomResource(
            GROUP,
            f"{name}-group",
            {"resourceGroupName": "rg-probe", "location": "westeurope"},
            pulumi.ResourceOptions(
                parent=self, protect=True, retain_on_delete=True, ignore_changes=["tags"]
            ),
        )
        account = pulumi.CustomResource(
            ACCOUNT,
            f"{name}-account",
            {"resourceGroupName": "rg-probe", "accountName": "stprobe"},
            pulumi.ResourceOptions(parent=self, depends_on=[group]),
        )
        pulumi.CustomResource(
            VAULT,
            f"{name}-vault",
            {
                # Known only once the group exists: the SDK must report the group as a dependency.
                "resourceGroupName": group.id.apply(lambda _: "rg-probe"),
                "vaultName": "kv-probe",
            },
            pulumi.ResourceOptions(
                parent=self,
                depends_on=[account],
                replace_on_changes=["vaultName"],
                delete_before_replace=True,
            ),
        )
        self.register_outputs({})


Probe("probe")
# A resource with no component: its parent is the stack.
pulumi.CustomResource(GROUP, "loose-group", {"resourceGroupName": "rg-loose", "location": "x"})
