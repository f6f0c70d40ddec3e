package mlflow

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// GetRun returns a run: its info, the latest value of each metric, params and tags.
func (c *Client) GetRun(ctx context.Context, runID string) (Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	if err := c.do(ctx, http.MethodGet, "runs/get", url.Values{"run_id": {runID}}, &out); err != nil {
		return Run{}, err
	}
	return out.Run, nil
}

// metricHistoryPage is the page size the Python client uses for get-history
// (GET_METRIC_HISTORY_MAX_RESULTS). It is always sent: older servers return an empty
// page when max_results is left out.
const metricHistoryPage = 25000

// MetricHistory returns every logged value of one metric, ordered by timestamp, step and
// value, following every page. pageSize 0 means 25,000.
func (c *Client) MetricHistory(ctx context.Context, runID, key string, pageSize int) ([]Metric, error) {
	if pageSize <= 0 {
		pageSize = metricHistoryPage
	}
	return collect(flatten(pageSeq(func(token string) ([]Metric, string, error) {
		q := url.Values{"run_id": {runID}, "metric_key": {key}, "max_results": {strconv.Itoa(pageSize)}}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Metrics       []Metric `json:"metrics"`
			NextPageToken string   `json:"next_page_token"`
		}
		if err := c.do(ctx, http.MethodGet, "metrics/get-history", q, &out); err != nil {
			return nil, "", err
		}
		return out.Metrics, out.NextPageToken, nil
	})))
}

// GetLoggedModel returns an MLflow 3 logged model with the params and metrics logged
// against it. A version registered from one has source "models:/<model_id>" and may have
// no run at all.
func (c *Client) GetLoggedModel(ctx context.Context, modelID string) (LoggedModel, error) {
	var out struct {
		Model LoggedModel `json:"model"`
	}
	if err := c.do(ctx, http.MethodGet, "logged-models/"+url.PathEscape(modelID), nil, &out); err != nil {
		return LoggedModel{}, err
	}
	return out.Model, nil
}

// CreateExperiment creates an experiment and returns its id.
func (c *Client) CreateExperiment(ctx context.Context, name string) (string, error) {
	var out struct {
		ExperimentID string `json:"experiment_id"`
	}
	if err := c.do(ctx, http.MethodPost, "experiments/create", map[string]string{"name": name}, &out); err != nil {
		return "", err
	}
	return out.ExperimentID, nil
}

// CreateRun starts a run in an experiment.
func (c *Client) CreateRun(ctx context.Context, experimentID, runName string) (Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	in := map[string]any{"experiment_id": experimentID, "run_name": runName, "start_time": time.Now().UnixMilli()}
	if err := c.do(ctx, http.MethodPost, "runs/create", in, &out); err != nil {
		return Run{}, err
	}
	return out.Run, nil
}

// LogBatch logs metrics, params and tags to a run. A metric with ModelID set is also
// recorded against that logged model.
func (c *Client) LogBatch(ctx context.Context, runID string, metrics []Metric, params []Param, tags Tags) error {
	in := struct {
		RunID   string   `json:"run_id"`
		Metrics []Metric `json:"metrics,omitempty"`
		Params  []Param  `json:"params,omitempty"`
		Tags    Tags     `json:"tags,omitempty"`
	}{runID, metrics, params, tags}
	return c.do(ctx, http.MethodPost, "runs/log-batch", in, nil)
}

// FinishRun marks a run FINISHED.
func (c *Client) FinishRun(ctx context.Context, runID string) error {
	in := map[string]any{"run_id": runID, "status": "FINISHED", "end_time": time.Now().UnixMilli()}
	return c.do(ctx, http.MethodPost, "runs/update", in, nil)
}

// CreateLoggedModel creates an MLflow 3 logged model, optionally linked to a run, and
// marks it ready.
func (c *Client) CreateLoggedModel(ctx context.Context, experimentID, name, sourceRunID string, params []Param) (LoggedModel, error) {
	var out struct {
		Model LoggedModel `json:"model"`
	}
	in := struct {
		ExperimentID string  `json:"experiment_id"`
		Name         string  `json:"name"`
		SourceRunID  string  `json:"source_run_id,omitempty"`
		Params       []Param `json:"params,omitempty"`
	}{experimentID, name, sourceRunID, params}
	if err := c.do(ctx, http.MethodPost, "logged-models", in, &out); err != nil {
		return LoggedModel{}, err
	}
	id := out.Model.Info.ModelID
	ready := map[string]string{"model_id": id, "status": "LOGGED_MODEL_READY"}
	if err := c.do(ctx, http.MethodPatch, "logged-models/"+url.PathEscape(id), ready, &out); err != nil {
		return LoggedModel{}, err
	}
	return out.Model, nil
}

// GetExperimentByName returns the id of the experiment with that name.
func (c *Client) GetExperimentByName(ctx context.Context, name string) (string, error) {
	var out struct {
		Experiment struct {
			ExperimentID string `json:"experiment_id"`
		} `json:"experiment"`
	}
	if err := c.do(ctx, http.MethodGet, "experiments/get-by-name", url.Values{"experiment_name": {name}}, &out); err != nil {
		return "", err
	}
	return out.Experiment.ExperimentID, nil
}
