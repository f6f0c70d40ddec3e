#!/usr/bin/env bash
# make test-compat: the tests that exercise MLflow's REST surface, against each MLflow
# release modelgate supports (README: Supported MLflow servers). Each release gets its
# own environment under .cache/ (scripts/install-mlflow.sh, MLFLOW_VERSION=...), and the
# tests start that release's server (MODELGATE_MLFLOW). Not the fuzzing, the benchmarks,
# the browser, Prometheus or Kubernetes tests: those do not depend on the server's release
# and `make test` runs them against the pinned one.
#
#   scripts/test-compat.sh                          # 2.22.5 3.0.1 3.3.2 3.18.0
#   MLFLOW_COMPAT_VERSIONS=3.3.2 scripts/test-compat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
versions=${MLFLOW_COMPAT_VERSIONS:-2.22.5 3.0.1 3.3.2 3.18.0}
flags=${GO_TEST_FLAGS:--race -count=1 -timeout 30m}

# The client against the server: every endpoint modelgate calls, paging, errors, auth.
mlflow_tests='^Test(ServerIsThePinnedRelease|Health|RegisteredModelEndpoints|ModelVersionEndpoints|SearchFollowsEveryPage|SearchByTag|RunEvidence|LoggedModelVersionResolvesMetrics|PromptIsRecognised|BasicAuth|InflightLimitFollowsARealServer)$'
# The reconciler on a real registry: promotion by alias and by stage, rejection, the
# review protocol, rollback, the signed record, staged rollout, re-certification, the
# audit trail, requests per decision and per idle pass.
transitions_tests='^Test(AutoPromotion|Rejection|ReviewThenApproval|UnlistedVoteIgnored|RejectionWithReason|TwoApprovalsNeeded|ReviewExpires|EvidenceChangeResetsVotes|ReevaluateTag|RollbackRestoresPreviousChampion|StageGateArchivesExisting|UserDescriptionKeptAcrossDecisions|PromptUntouched|ManualAliasMoveNotReverted|NotNewerThanTheChampion|IdleCycleRequestCount|BurstOfNewVersionsIsFollowedAcrossPages|RequestsPerDecision|ForgedRollbackTarget|UndoneVetoIsRestored|ProtectedAliasMovedBack|Override|RenamedModelKeepsItsRecords|RecordRemovedIsRestored|LineageInTheReport|StagedRollout|StageCheckFails|Recertification|History)$'
# The daemon and its commands: start-up against the release (webhooks, /readyz, the
# server_info gauge), run --once, evaluate, history, permissions.
cmd_tests='^Test(RunOncePromotes|DryRunWritesNothing|DaemonServesHealthDecidesAndStops|EvaluateAgainstMLflow|HistoryCommand|MissingPermissions|WebhooksDecideInAboutASecond|LostWebhookCaughtByPolling)$'

for v in $versions; do
  echo "--- MLflow $v"
  if [ "$v" = "$(sed -n 's/^PINNED=//p' scripts/install-mlflow.sh)" ]; then
    venv=${MODELGATE_MLFLOW_VENV:-.cache/mlflow-venv}
  else
    venv=.cache/mlflow-$v-venv
  fi
  MLFLOW_VERSION=$v MODELGATE_MLFLOW_VENV=$venv scripts/install-mlflow.sh
  export MODELGATE_MLFLOW=$(cd "$venv" && pwd)/bin/mlflow
  # shellcheck disable=SC2086
  go test $flags -run "$mlflow_tests" ./mlflow
  # shellcheck disable=SC2086
  go test $flags -run "$transitions_tests" ./transitions
  # shellcheck disable=SC2086
  go test $flags -run "$cmd_tests" ./cmd/modelgate
done
echo "test-compat: passed on MLflow $versions"
