package mlflowtest

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
)

// Client returns a client for the server with short retries, for tests.
func (s *Server) Client(tb testing.TB, opts mlflow.Options) *mlflow.Client {
	tb.Helper()
	opts.TrackingURI = s.URL
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 3
	}
	if opts.BackoffFactor == 0 {
		opts.BackoffFactor = 50 * time.Millisecond
	}
	if s.opts.BasicAuth && opts.Username == "" && opts.Token == "" {
		opts.Username, opts.Password = AdminUser, AdminPassword
	}
	c, err := mlflow.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Version describes a model version to register the way a training job would.
type Version struct {
	Model       string
	Metrics     map[string]float64
	Params      map[string]string
	RunTags     map[string]string
	VersionTags map[string]string
	Description string
	// LoggedModel registers the version MLflow 3 style: from a logged model with no run
	// of its own (source models:/m-..., empty run_id), its metrics logged against the
	// model from a separate evaluation run.
	LoggedModel bool
	// Datasets are logged on the run as its inputs (mlflow.log_input).
	Datasets []mlflow.DatasetInput
}

// Registry is the registry and tracking API the tests drive, both as modelgate's reader
// and writer and as a training job or a person would: *mlflow.Client (a real server)
// and *Memory satisfy it, so one scenario runs against both.
type Registry interface {
	CreateRegisteredModel(ctx context.Context, name string, tags mlflow.Tags, description string) (mlflow.RegisteredModel, error)
	GetRegisteredModel(ctx context.Context, name string) (mlflow.RegisteredModel, error)
	RenameRegisteredModel(ctx context.Context, name, newName string) (mlflow.RegisteredModel, error)
	CreateModelVersion(ctx context.Context, req mlflow.CreateModelVersionRequest) (mlflow.ModelVersion, error)
	GetModelVersion(ctx context.Context, name, version string) (mlflow.ModelVersion, error)
	DeleteModelVersion(ctx context.Context, name, version string) error
	SearchModelVersions(ctx context.Context, opts mlflow.SearchOptions) ([]mlflow.ModelVersion, error)
	SearchModelVersionsPage(ctx context.Context, opts mlflow.SearchOptions, pageToken string) ([]mlflow.ModelVersion, string, error)
	ModelVersionPages(ctx context.Context, opts mlflow.SearchOptions) iter.Seq2[[]mlflow.ModelVersion, error]
	LogInputs(ctx context.Context, runID string, datasets []mlflow.DatasetInput) error
	RegisteredModelPages(ctx context.Context, opts mlflow.SearchOptions) iter.Seq2[[]mlflow.RegisteredModel, error]
	SetModelVersionTag(ctx context.Context, name, version, key, value string) error
	DeleteModelVersionTag(ctx context.Context, name, version, key string) error
	UpdateModelVersionDescription(ctx context.Context, name, version, description string) (mlflow.ModelVersion, error)
	SetAlias(ctx context.Context, name, alias, version string) error
	DeleteAlias(ctx context.Context, name, alias string) error
	GetModelVersionByAlias(ctx context.Context, name, alias string) (mlflow.ModelVersion, error)
	GetVoteRecords(ctx context.Context, name, version string) (mlflow.VoteRecords, error)
	TransitionStage(ctx context.Context, name, version, stage string, archiveExisting bool) (mlflow.ModelVersion, error)
	GetLatestVersions(ctx context.Context, name string, stages ...string) ([]mlflow.ModelVersion, error)
	CreateExperiment(ctx context.Context, name string) (string, error)
	GetExperimentByName(ctx context.Context, name string) (string, error)
	ExperimentByName(ctx context.Context, name string) (mlflow.Experiment, error)
	SetExperimentTag(ctx context.Context, experimentID, key, value string) error
	StartRun(ctx context.Context, spec mlflow.RunSpec) (mlflow.Run, error)
	SearchRunsPage(ctx context.Context, opts mlflow.SearchRunsOptions, pageToken string) ([]mlflow.Run, string, error)
	RunPages(ctx context.Context, opts mlflow.SearchRunsOptions) iter.Seq2[[]mlflow.Run, error]
	CreateRun(ctx context.Context, experimentID, runName string) (mlflow.Run, error)
	GetRun(ctx context.Context, runID string) (mlflow.Run, error)
	LogBatch(ctx context.Context, runID string, metrics []mlflow.Metric, params []mlflow.Param, tags mlflow.Tags) error
	FinishRun(ctx context.Context, runID string) error
	SetRunTag(ctx context.Context, runID, key, value string) error
	CreateLoggedModel(ctx context.Context, experimentID, name, sourceRunID string, params []mlflow.Param) (mlflow.LoggedModel, error)
	GetLoggedModel(ctx context.Context, modelID string) (mlflow.LoggedModel, error)
}

var (
	_ Registry = (*mlflow.Client)(nil)
	_ Registry = (*Memory)(nil)
)

// CreateVersion creates the registered model if needed, logs the evidence and registers
// a version.
func CreateVersion(ctx context.Context, c Registry, v Version) (mlflow.ModelVersion, error) {
	if _, err := c.CreateRegisteredModel(ctx, v.Model, nil, ""); err != nil && !mlflow.IsAlreadyExists(err) {
		return mlflow.ModelVersion{}, err
	}
	exp, err := experiment(ctx, c, "modelgate-tests-"+v.Model)
	if err != nil {
		return mlflow.ModelVersion{}, err
	}
	run, err := c.CreateRun(ctx, exp, "train")
	if err != nil {
		return mlflow.ModelVersion{}, err
	}
	var params []mlflow.Param
	for _, k := range slices.Sorted(maps.Keys(v.Params)) {
		params = append(params, mlflow.Param{Key: k, Value: v.Params[k]})
	}
	req := mlflow.CreateModelVersionRequest{Name: v.Model, Tags: v.VersionTags, Description: v.Description}
	modelID := ""
	if v.LoggedModel {
		lm, err := c.CreateLoggedModel(ctx, exp, "model", "", params)
		if err != nil {
			return mlflow.ModelVersion{}, err
		}
		modelID = lm.Info.ModelID
		params = nil
		req.Source, req.ModelID = "models:/"+modelID, modelID
	} else {
		req.Source = fmt.Sprintf("runs:/%s/model", run.Info.RunID)
		req.RunID = run.Info.RunID
	}
	now := time.Now().UnixMilli()
	var metrics []mlflow.Metric
	for _, k := range slices.Sorted(maps.Keys(v.Metrics)) {
		metrics = append(metrics, mlflow.Metric{Key: k, Value: mlflow.Float(v.Metrics[k]), Timestamp: now, ModelID: modelID})
	}
	if err := c.LogBatch(ctx, run.Info.RunID, metrics, params, v.RunTags); err != nil {
		return mlflow.ModelVersion{}, err
	}
	if len(v.Datasets) > 0 {
		if err := c.LogInputs(ctx, run.Info.RunID, v.Datasets); err != nil {
			return mlflow.ModelVersion{}, err
		}
	}
	if err := c.FinishRun(ctx, run.Info.RunID); err != nil {
		return mlflow.ModelVersion{}, err
	}
	return c.CreateModelVersion(ctx, req)
}

// experiment returns the id of an experiment, creating it on first use.
func experiment(ctx context.Context, c Registry, name string) (string, error) {
	id, err := c.CreateExperiment(ctx, name)
	if mlflow.IsAlreadyExists(err) {
		return c.GetExperimentByName(ctx, name)
	}
	return id, err
}
