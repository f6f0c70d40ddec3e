"""Waits until modelgate has decided the demo's versions, then says what happened and
what to do in the MLflow UI."""

import sys
import time

from mlflow import MlflowClient

uri, model = sys.argv[1], sys.argv[2]
client = MlflowClient(uri)
deadline = time.time() + 120
while True:
    versions = sorted(client.search_model_versions(f"name = '{model}'"), key=lambda v: int(v.version))
    if versions and all("modelgate.status" in v.tags for v in versions):
        break
    if time.time() > deadline:
        sys.exit("modelgate has not decided every version after 2 minutes: see its log above")
    time.sleep(1)

champion = client.get_model_version_by_alias(model, "champion").version
print("\nWhat modelgate did:")
for v in versions:
    status = v.tags["modelgate.status"]
    print(f"  {model} v{v.version}: {status} - {v.tags.get('modelgate.summary', '')}")
print(f"\n  The alias 'champion' points at version {champion}.")
for v in versions:
    link = f"{uri}/#/models/{model}/versions/{v.version}"
    if v.tags["modelgate.status"] == "pending_review":
        print(f"\nVersion {v.version} waits for a reviewer. Open {link}")
        print("  the description shows the gate report; to approve, add the tag")
        print("      modelgate.approve.alice   (value: an optional comment)")
        print("  or to reject, modelgate.reject.alice with the reason as value.")
        print("  modelgate acts within one poll interval and promotes it if approved;")
        print("  reload the page to see it (MLflow does not refresh an open page).")
    elif v.tags["modelgate.status"] == "rejected":
        print(f"\nVersion {v.version} was rejected: {link}")
    elif v.tags["modelgate.status"] == "promoted":
        print(f"\nVersion {v.version} is the champion: {link}")
        print("  to roll it back, add the tag modelgate.rollback with the reason as value.")
print("\nmodelgate keeps running; press Ctrl-C to stop it and MLflow.\n", flush=True)
