package mlflowtest

import (
	"context"
	"fmt"
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
}

// CreateVersion creates the registered model if needed, logs the evidence and registers
// a version.
func CreateVersion(ctx context.Context, c *mlflow.Client, v Version) (mlflow.ModelVersion, error) {
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
	if err := c.FinishRun(ctx, run.Info.RunID); err != nil {
		return mlflow.ModelVersion{}, err
	}
	return c.CreateModelVersion(ctx, req)
}

// experiment returns the id of an experiment, creating it on first use.
func experiment(ctx context.Context, c *mlflow.Client, name string) (string, error) {
	id, err := c.CreateExperiment(ctx, name)
	if mlflow.IsAlreadyExists(err) {
		return c.GetExperimentByName(ctx, name)
	}
	return id, err
}
