package mlflow

import (
	"context"
	"fmt"
	"iter"
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

// LogInputs logs datasets on a run (runs/log-inputs), as mlflow.log_input does.
func (c *Client) LogInputs(ctx context.Context, runID string, datasets []DatasetInput) error {
	in := struct {
		RunID    string         `json:"run_id"`
		Datasets []DatasetInput `json:"datasets"`
	}{runID, datasets}
	return c.do(ctx, http.MethodPost, "runs/log-inputs", in, nil)
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

// Experiment is an MLflow experiment with its tags.
type Experiment struct {
	ExperimentID   string `json:"experiment_id"`
	Name           string `json:"name"`
	LifecycleStage string `json:"lifecycle_stage"`
	Tags           Tags   `json:"tags"`
}

// ExperimentByName returns the experiment with that name; ErrNotFound when there is none.
func (c *Client) ExperimentByName(ctx context.Context, name string) (Experiment, error) {
	var out struct {
		Experiment Experiment `json:"experiment"`
	}
	if err := c.do(ctx, http.MethodGet, "experiments/get-by-name", url.Values{"experiment_name": {name}}, &out); err != nil {
		return Experiment{}, err
	}
	return out.Experiment, nil
}

// SetExperimentTag sets one tag on an experiment.
func (c *Client) SetExperimentTag(ctx context.Context, experimentID, key, value string) error {
	in := map[string]string{"experiment_id": experimentID, "key": key, "value": value}
	if err := c.do(ctx, http.MethodPost, "experiments/set-experiment-tag", in, nil); err != nil {
		return fmt.Errorf("set tag %s on experiment %s: %w", key, experimentID, err)
	}
	return nil
}

// SetRunTag sets one tag on a run.
func (c *Client) SetRunTag(ctx context.Context, runID, key, value string) error {
	in := map[string]string{"run_id": runID, "key": key, "value": value}
	if err := c.do(ctx, http.MethodPost, "runs/set-tag", in, nil); err != nil {
		return fmt.Errorf("set tag %s on run %s: %w", key, runID, err)
	}
	return nil
}

// RunSpec describes a run to start.
type RunSpec struct {
	ExperimentID string
	RunName      string
	StartTime    time.Time // zero: now
	Tags         Tags
}

// StartRun creates a run with its name, start time and tags in one request.
func (c *Client) StartRun(ctx context.Context, spec RunSpec) (Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	start := spec.StartTime
	if start.IsZero() {
		start = time.Now()
	}
	in := struct {
		ExperimentID string `json:"experiment_id"`
		RunName      string `json:"run_name,omitempty"`
		StartTime    int64  `json:"start_time"`
		Tags         Tags   `json:"tags,omitempty"`
	}{spec.ExperimentID, spec.RunName, start.UnixMilli(), spec.Tags}
	if err := c.do(ctx, http.MethodPost, "runs/create", in, &out); err != nil {
		return Run{}, err
	}
	return out.Run, nil
}

// SearchRunsOptions selects and orders runs.
type SearchRunsOptions struct {
	ExperimentIDs []string
	// Filter uses MLflow's run search grammar, e.g. "tags.`modelgate.model` = 'm'".
	Filter string
	// OrderBy entries such as "attributes.start_time DESC".
	OrderBy []string
	// PageSize is max_results per request (the server caps it at 50,000; default 1,000).
	PageSize int
}

// SearchRunsPage fetches one page of runs.
func (c *Client) SearchRunsPage(ctx context.Context, opts SearchRunsOptions, pageToken string) ([]Run, string, error) {
	var out struct {
		Runs          []Run  `json:"runs"`
		NextPageToken string `json:"next_page_token"`
	}
	in := struct {
		ExperimentIDs []string `json:"experiment_ids"`
		Filter        string   `json:"filter,omitempty"`
		RunViewType   string   `json:"run_view_type"`
		MaxResults    int      `json:"max_results"`
		OrderBy       []string `json:"order_by,omitempty"`
		PageToken     string   `json:"page_token,omitempty"`
	}{opts.ExperimentIDs, opts.Filter, "ACTIVE_ONLY", cmpOr(opts.PageSize, 1000), opts.OrderBy, pageToken}
	if err := c.do(ctx, http.MethodPost, "runs/search", in, &out); err != nil {
		return nil, "", err
	}
	return out.Runs, out.NextPageToken, nil
}

// RunPages iterates over the pages of a run search.
func (c *Client) RunPages(ctx context.Context, opts SearchRunsOptions) iter.Seq2[[]Run, error] {
	return pageSeq(func(token string) ([]Run, string, error) {
		return c.SearchRunsPage(ctx, opts, token)
	})
}

func cmpOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
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
