"""What teams write today instead of modelgate: a promotion script on MlflowClient.

It decides the same versions the same way as the benchmark's policy (accuracy floor,
AUC floor, recall gap, at least as good an F1 as the champion), one version after the
other, and writes a status tag, a summary tag, a description, and moves the champion alias.

Usage: MLFLOW_TRACKING_URI=... python baseline.py <model name prefix>
"""

import sys
from collections import defaultdict

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

prefix = sys.argv[1]
client = MlflowClient()
by_model = defaultdict(list)
for mv in client.search_model_versions(f"name LIKE '{prefix}%'"):
    by_model[mv.name].append(mv)

for name, versions in by_model.items():
    for mv in sorted(versions, key=lambda v: int(v.version)):
        m = client.get_run(mv.run_id).data.metrics
        ok = m["accuracy"] >= 0.8 and m["auc"] >= 0.7 and m["recall_sex_m"] - m["recall_sex_f"] <= 0.1
        try:
            champion = client.get_model_version_by_alias(name, "champion")
            champion_f1 = client.get_run(champion.run_id).data.metrics["f1_score"]
            ok = ok and m["f1_score"] >= champion_f1
        except MlflowException:
            pass
        status = "promoted" if ok else "rejected"
        client.update_model_version(name, mv.version, description=f"report: {status}")
        client.set_model_version_tag(name, mv.version, "status", status)
        client.set_model_version_tag(name, mv.version, "summary", f"accuracy {m['accuracy']:.3f}")
        if ok:
            client.set_registered_model_alias(name, "champion", mv.version)
