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

# The staged rollout: fraud-detector holds `challenger` for 20 seconds; an
# online-monitoring job logs its live precision against the version's run meanwhile.
fraud = "fraud-detector"


def wait_status(version, want, limit=120):
    end = time.time() + limit
    while time.time() < end:
        mv = client.get_model_version(fraud, version)
        if mv.tags.get("modelgate.status") in want:
            return mv
        time.sleep(1)
    sys.exit(f"{fraud} v{version} did not become {' or '.join(want)} in {limit}s: see modelgate's log above")


fv = client.search_model_versions(f"name = '{fraud}'")
if fv:
    v = fv[0]
    mv = wait_status(v.version, ["staged", "pending_review", "rejected"])
    print(f"\n{fraud} v{v.version}: {mv.tags['modelgate.status']} - {mv.tags.get('modelgate.summary', '')}")
    if mv.tags["modelgate.status"] == "staged":
        client.log_metric(v.run_id, "online_precision", 0.93)
        print("  an online-monitoring job logs online_precision 0.93 against its run; the soak ends in 20s")
        mv = wait_status(v.version, ["promoted", "rejected", "pending_review"])
        print(f"{fraud} v{v.version}: {mv.tags['modelgate.status']} - {mv.tags.get('modelgate.summary', '')}")
        print(f"  {uri}/#/models/{fraud}/versions/{v.version}")

print("\nmodelgate keeps running; press Ctrl-C to stop it and MLflow.\n", flush=True)
