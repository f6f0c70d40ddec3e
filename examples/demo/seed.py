"""Registers three versions of a credit-scoring model, the way a data scientist would.

Each version is a small scikit-learn model trained on synthetic credit data and logged
with the MLflow client: metrics (accuracy, F1, AUC, recall per sex, demographic parity
difference), the training size as a param, the security scan result as a run tag, and
the model itself registered under `credit-scoring`.

  v1: a good model                     -> modelgate promotes it to `champion`
  v2: recall much lower for women      -> rejected by the `recall-by-group` check
  v3: noisier labels, accuracy ~0.86   -> waits for a reviewer (accuracy-target, beats-champion)

and one version of `fraud-detector`, trained from this git checkout on a logged dataset:
the fraud-detection gate checks its lineage and puts it through a staged rollout (it
holds `challenger` for 20 seconds, then its online precision decides).

Usage: MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python seed.py
"""

import subprocess
import warnings

import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

warnings.filterwarnings("ignore")
MODEL = "credit-scoring"


def make_data(rng, n, label_noise):
    """Synthetic applicants: income and debt scores, sex, and whether they repaid."""
    sex = rng.choice(["female", "male"], size=n)
    income = rng.normal(size=n)
    debt = rng.normal(size=n)
    repaid = (1.2 * income - 0.8 * debt + rng.normal(scale=0.3, size=n)) > 0
    flip = rng.random(n) < label_noise
    repaid = np.where(flip, ~repaid, repaid)
    return np.column_stack([income, debt]), repaid.astype(int), sex


def train_and_register(version_name, label_noise=0.02, biased=False, seed=0):
    rng = np.random.default_rng(seed)
    X, y, sex = make_data(rng, 6000, label_noise)
    X_train, y_train = X[:4000], y[:4000]
    X_test, y_test, sex_test = X[4000:], y[4000:], sex[4000:]
    model = LogisticRegression().fit(X_train, y_train)

    X_eval = X_test.copy()
    if biased:
        # A bug in the new feature pipeline scales women's income differently, so their
        # scores arrive 0.3 lower: fewer women who would repay are approved.
        X_eval[sex_test == "female", 0] -= 0.3
    pred = model.predict(X_eval)
    proba = model.predict_proba(X_eval)[:, 1]

    metrics = {
        "accuracy": accuracy_score(y_test, pred),
        "f1_score": f1_score(y_test, pred),
        "auc": roc_auc_score(y_test, proba),
    }
    rates = {}
    for group in ["female", "male"]:
        mask = sex_test == group
        metrics[f"recall_sex_{group}"] = recall_score(y_test[mask], pred[mask])
        rates[group] = pred[mask].mean()
    metrics["demographic_parity_difference"] = abs(rates["female"] - rates["male"])

    mlflow.set_experiment("credit-scoring")
    with mlflow.start_run(run_name=version_name):
        mlflow.log_params({"n_rows": len(X_train), "label_noise": label_noise, "model": "logistic_regression"})
        mlflow.log_metrics(metrics)
        mlflow.set_tag("security_scan", "passed")
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=MODEL, input_example=X_train[:2])
    shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items()))
    print(f"  registered {MODEL} version {info.registered_model_version} ({version_name}): {shown}", flush=True)


def git_commit():
    """The commit of this checkout, as MLflow records it for a script run from git."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def train_fraud_detector():
    rng = np.random.default_rng(7)
    X, y, _ = make_data(rng, 4000, 0.03)
    model = LogisticRegression().fit(X[:3000], y[:3000])
    pred = model.predict(X[3000:])
    mlflow.set_experiment("fraud-detector")
    with mlflow.start_run(run_name="weekly-retrain"):
        commit = git_commit()
        if commit:
            mlflow.set_tag("mlflow.source.git.commit", commit)
        mlflow.log_input(mlflow.data.from_numpy(X[:3000], targets=y[:3000], name="transactions-2026-w47"), context="training")
        mlflow.log_metric("precision", float(((pred == 1) & (y[3000:] == 1)).sum() / max((pred == 1).sum(), 1)))
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="fraud-detector", input_example=X[:2])
    print(f"  registered fraud-detector version {info.registered_model_version} (commit {commit[:12] or 'unknown'}, dataset transactions-2026-w47)", flush=True)


if __name__ == "__main__":
    print(f"Registering three versions of {MODEL} with the MLflow client:", flush=True)
    train_and_register("baseline", label_noise=0.02, seed=1)
    train_and_register("new-features", label_noise=0.02, biased=True, seed=2)
    train_and_register("more-data-noisy-labels", label_noise=0.12, seed=3)
    train_fraud_detector()
