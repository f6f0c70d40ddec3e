package mlflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PromptTag marks a registered model (and its versions) as a prompt in MLflow 3.
// Prompts live in the model registry but are not models: modelgate never gates them.
const PromptTag = "mlflow.prompt.is_prompt"

// Tags is a set of key/value tags. On the wire MLflow sends a list of {key, value}
// objects and omits the list when it is empty; Tags decodes both into a map, never nil
// after decoding.
type Tags map[string]string

type wireTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// UnmarshalJSON decodes MLflow's [{key, value}] list.
func (t *Tags) UnmarshalJSON(b []byte) error {
	var list []wireTag
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	m := make(Tags, len(list))
	for _, kv := range list {
		m[kv.Key] = kv.Value
	}
	*t = m
	return nil
}

// MarshalJSON encodes the tags as MLflow's [{key, value}] list, sorted by key so that
// requests are reproducible.
func (t Tags) MarshalJSON() ([]byte, error) {
	list := make([]wireTag, 0, len(t))
	for k, v := range t {
		list = append(list, wireTag{Key: k, Value: v})
	}
	slices.SortFunc(list, func(a, b wireTag) int { return strings.Compare(a.Key, b.Key) })
	return json.Marshal(list)
}

// Float is a metric value as MLflow's REST API encodes it. Finite values are JSON
// numbers; NaN comes as the string "NaN" (protobuf's JSON mapping). The SQL store cannot
// hold infinities and clamps them to ±math.MaxFloat64 on write, so those two values are
// read back as ±Inf: a metric logged as inf must not pass a bound as a huge number.
type Float float64

// UnmarshalJSON accepts a JSON number or one of "NaN", "Infinity", "-Infinity".
func (f *Float) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "NaN":
			*f = Float(math.NaN())
		case "Infinity", "inf", "Inf":
			*f = Float(math.Inf(1))
		case "-Infinity", "-inf", "-Inf":
			*f = Float(math.Inf(-1))
		default:
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return fmt.Errorf("metric value %q is not a number", s)
			}
			*f = Float(v)
		}
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v {
	case math.MaxFloat64:
		v = math.Inf(1)
	case -math.MaxFloat64:
		v = math.Inf(-1)
	}
	*f = Float(v)
	return nil
}

// MarshalJSON writes NaN and infinities the way MLflow's protobuf JSON parser reads them.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return json.Marshal(v)
}

// ModelVersion is one version of a registered model.
type ModelVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"` // a decimal number, sent as a JSON string
	// CreationTimestamp and LastUpdatedTimestamp are Unix milliseconds. Tag and alias
	// edits do not bump LastUpdatedTimestamp.
	CreationTimestamp    int64  `json:"creation_timestamp"`
	LastUpdatedTimestamp int64  `json:"last_updated_timestamp"`
	CurrentStage         string `json:"current_stage"`
	Description          string `json:"description"`
	Source               string `json:"source"`
	RunID                string `json:"run_id"`
	Status               string `json:"status"`
	StatusMessage        string `json:"status_message"`
	RunLink              string `json:"run_link"`
	Tags                 Tags   `json:"tags"`
	// Aliases is filled by get, get-by-alias, update and transition. Search results
	// always carry an empty list, whatever aliases the version holds.
	Aliases []string `json:"aliases"`
}

// Created returns the creation time.
func (mv ModelVersion) Created() time.Time { return time.UnixMilli(mv.CreationTimestamp).UTC() }

// IsPrompt reports whether the version belongs to an MLflow prompt.
func (mv ModelVersion) IsPrompt() bool { return strings.EqualFold(mv.Tags[PromptTag], "true") }

// Number returns the version as an integer, and false when it is not one.
func (mv ModelVersion) Number() (int64, bool) { return VersionNumber(mv.Version) }

// LoggedModelID returns the MLflow 3 logged model behind the version (its source is
// "models:/m-..."), or "" when the version was registered from a run artifact path.
func (mv ModelVersion) LoggedModelID() string {
	rest, ok := strings.CutPrefix(mv.Source, "models:/")
	if !ok || !strings.HasPrefix(rest, "m-") {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// VersionNumber parses a model version string.
func VersionNumber(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}

// CompareVersions orders two version strings numerically; strings that are not numbers
// sort before every number and among themselves lexically.
func CompareVersions(a, b string) int {
	na, oka := VersionNumber(a)
	nb, okb := VersionNumber(b)
	switch {
	case oka && okb:
		return cmpInt(na, nb)
	case oka:
		return 1
	case okb:
		return -1
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Alias maps an alias name to a version of a registered model.
type Alias struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

// RegisteredModel is a model in the registry with its aliases and tags.
type RegisteredModel struct {
	Name                 string         `json:"name"`
	CreationTimestamp    int64          `json:"creation_timestamp"`
	LastUpdatedTimestamp int64          `json:"last_updated_timestamp"`
	Description          string         `json:"description"`
	LatestVersions       []ModelVersion `json:"latest_versions"`
	Tags                 Tags           `json:"tags"`
	Aliases              []Alias        `json:"aliases"`
}

// IsPrompt reports whether the registered model is an MLflow prompt.
func (rm RegisteredModel) IsPrompt() bool { return strings.EqualFold(rm.Tags[PromptTag], "true") }

// AliasVersion returns the version an alias points at, and false when it is unset.
func (rm RegisteredModel) AliasVersion(alias string) (string, bool) {
	for _, a := range rm.Aliases {
		if a.Alias == alias {
			return a.Version, true
		}
	}
	return "", false
}

// Metric is one logged value of a metric.
type Metric struct {
	Key       string `json:"key"`
	Value     Float  `json:"value"`
	Timestamp int64  `json:"timestamp"`
	Step      int64  `json:"step"`
	ModelID   string `json:"model_id,omitempty"`
}

// Param is a run or logged-model parameter.
type Param struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// RunInfo describes a run.
type RunInfo struct {
	RunID          string `json:"run_id"`
	RunName        string `json:"run_name"`
	ExperimentID   string `json:"experiment_id"`
	Status         string `json:"status"`
	StartTime      int64  `json:"start_time"`
	EndTime        int64  `json:"end_time"`
	ArtifactURI    string `json:"artifact_uri"`
	LifecycleStage string `json:"lifecycle_stage"`
}

// RunData holds the latest value of each metric, the params and the tags of a run.
type RunData struct {
	Metrics []Metric `json:"metrics"`
	Params  []Param  `json:"params"`
	Tags    Tags     `json:"tags"`
}

// Run is an MLflow run.
type Run struct {
	Info   RunInfo   `json:"info"`
	Data   RunData   `json:"data"`
	Inputs RunInputs `json:"inputs"`
}

// RunInputs are what a run was trained or evaluated on (mlflow.log_input).
type RunInputs struct {
	DatasetInputs []DatasetInput `json:"dataset_inputs,omitempty"`
}

// DatasetInput is one dataset logged on a run, with its tags (mlflow.data.context:
// training, evaluation, ...).
type DatasetInput struct {
	Tags    Tags    `json:"tags,omitempty"`
	Dataset Dataset `json:"dataset"`
}

// Dataset identifies a dataset: its name and digest (a hash of its content, computed by
// MLflow's dataset classes), and where it came from.
type Dataset struct {
	Name       string `json:"name"`
	Digest     string `json:"digest"`
	SourceType string `json:"source_type,omitempty"`
	Source     string `json:"source,omitempty"`
}

// LoggedModelInfo describes an MLflow 3 logged model.
type LoggedModelInfo struct {
	ModelID      string `json:"model_id"`
	ExperimentID string `json:"experiment_id"`
	Name         string `json:"name"`
	SourceRunID  string `json:"source_run_id"`
	Status       string `json:"status"`
	ArtifactURI  string `json:"artifact_uri"`
	Tags         Tags   `json:"tags"`
}

// LoggedModelData holds the params and metrics logged against a logged model.
type LoggedModelData struct {
	Params  []Param  `json:"params"`
	Metrics []Metric `json:"metrics"`
}

// LoggedModel is an MLflow 3 logged model (GET /logged-models/{id}).
type LoggedModel struct {
	Info LoggedModelInfo `json:"info"`
	Data LoggedModelData `json:"data"`
}

// LatestMetrics reduces a list of metric values to the latest value per key, ordered as
// MLflow orders history: by step, then timestamp, then value.
func LatestMetrics(ms []Metric) map[string]float64 {
	type seen struct {
		step, ts int64
		v        float64
	}
	latest := make(map[string]seen, len(ms))
	for _, m := range ms {
		cur, ok := latest[m.Key]
		v := float64(m.Value)
		if !ok || m.Step > cur.step || (m.Step == cur.step && (m.Timestamp > cur.ts || (m.Timestamp == cur.ts && v > cur.v))) {
			latest[m.Key] = seen{m.Step, m.Timestamp, v}
		}
	}
	out := make(map[string]float64, len(latest))
	for k, s := range latest {
		out[k] = s.v
	}
	return out
}

// ParamMap turns a list of params into a map.
func ParamMap(ps []Param) map[string]string {
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		out[p.Key] = p.Value
	}
	return out
}

// isJSON reports whether b holds a single JSON value, ignoring surrounding space.
func isJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && json.Valid(b)
}
