package mlflowtest

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/modelgate/modelgate/mlflow"
)

// Memory is an in-memory model registry and tracking store with the behaviour of a real
// MLflow 3 server where modelgate depends on it: versions numbered per model and never
// reused, search results with empty aliases and without prompts or deleted versions,
// offset page tokens, tag filters (= and LIKE), aliases that go with a deleted version,
// stage transitions that archive, errors as *mlflow.Error with MLflow's error codes.
// It lets the reconciler's state machine run in unit tests in milliseconds; the
// integration tests run the same scenarios against the real server and compare.
//
// It is safe for concurrent use.
type Memory struct {
	// Clock stamps creations and updates (default time.Now).
	Clock func() time.Time
	// Observer, when set, is told of each call under the endpoint name the real client
	// reports (e.g. "model-versions/search"), so tests can count requests.
	Observer mlflow.Observer

	mu           sync.Mutex
	models       map[string]*memModel
	runs         map[string]*mlflow.Run
	loggedModels map[string]*mlflow.LoggedModel
	experiments  map[string]*mlflow.Experiment // by name
	ids          int
	lastStamp    int64
	voteRecords  map[[2]string]*mlflow.VoteRecords // what a modelgate-auth app would record
}

type memModel struct {
	rm       mlflow.RegisteredModel
	versions map[string]*mlflow.ModelVersion // live versions
	next     int64
}

// NewMemory returns an empty registry.
func NewMemory() *Memory {
	return &Memory{models: map[string]*memModel{}, runs: map[string]*mlflow.Run{},
		loggedModels: map[string]*mlflow.LoggedModel{}, experiments: map[string]*mlflow.Experiment{}}
}

// stamp returns the current time in Unix milliseconds, strictly after the previous
// stamp, so creation order is total (a real server's clock gives equal stamps rarely).
func (m *Memory) stamp() int64 {
	now := time.Now
	if m.Clock != nil {
		now = m.Clock
	}
	t := now().UnixMilli()
	if t <= m.lastStamp {
		t = m.lastStamp + 1
	}
	m.lastStamp = t
	return t
}

func (m *Memory) observe(endpoint string) {
	if m.Observer != nil {
		m.Observer.ObserveMLflowRequest(endpoint, "200", 0)
	}
}

func (m *Memory) id(prefix string) string {
	m.ids++
	return fmt.Sprintf("%s%06d", prefix, m.ids)
}

func notFound(endpoint, format string, args ...any) *mlflow.Error {
	return &mlflow.Error{Method: "GET", Endpoint: endpoint, StatusCode: http.StatusNotFound,
		Code: "RESOURCE_DOES_NOT_EXIST", Message: fmt.Sprintf(format, args...)}
}

func invalid(endpoint, format string, args ...any) *mlflow.Error {
	return &mlflow.Error{Method: "POST", Endpoint: endpoint, StatusCode: http.StatusBadRequest,
		Code: "INVALID_PARAMETER_VALUE", Message: fmt.Sprintf(format, args...)}
}

func (m *Memory) model(endpoint, name string) (*memModel, error) {
	rm, ok := m.models[name]
	if !ok {
		return nil, notFound(endpoint, "Registered Model with name=%s not found", name)
	}
	return rm, nil
}

func (m *Memory) version(endpoint, name, version string) (*memModel, *mlflow.ModelVersion, error) {
	rm, err := m.model(endpoint, name)
	if err != nil {
		return nil, nil, err
	}
	mv, ok := rm.versions[version]
	if !ok {
		return nil, nil, notFound(endpoint, "Model Version (name=%s, version=%s) not found", name, version)
	}
	return rm, mv, nil
}

// withAliases copies a version and fills its aliases, as get answers.
func (rm *memModel) withAliases(mv *mlflow.ModelVersion) mlflow.ModelVersion {
	out := copyVersion(mv)
	out.Aliases = []string{}
	for _, a := range rm.rm.Aliases {
		if a.Version == mv.Version {
			out.Aliases = append(out.Aliases, a.Alias)
		}
	}
	slices.Sort(out.Aliases)
	return out
}

func copyVersion(mv *mlflow.ModelVersion) mlflow.ModelVersion {
	out := *mv
	out.Tags = cloneTags(mv.Tags)
	out.Aliases = nil
	return out
}

// cloneTags copies tags, never returning nil (decoded tags never are).
func cloneTags(t mlflow.Tags) mlflow.Tags {
	out := make(mlflow.Tags, len(t))
	maps.Copy(out, t)
	return out
}

// CreateRegisteredModel creates a model; an existing name gives ErrAlreadyExists.
func (m *Memory) CreateRegisteredModel(_ context.Context, name string, tags mlflow.Tags, description string) (mlflow.RegisteredModel, error) {
	m.observe("registered-models/create")
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.models[name]; ok {
		return mlflow.RegisteredModel{}, &mlflow.Error{Method: "POST", Endpoint: "registered-models/create", StatusCode: http.StatusBadRequest,
			Code: "RESOURCE_ALREADY_EXISTS", Message: fmt.Sprintf("Registered Model (name=%s) already exists.", name)}
	}
	now := m.stamp()
	rm := &memModel{rm: mlflow.RegisteredModel{Name: name, CreationTimestamp: now, LastUpdatedTimestamp: now,
		Description: description, Tags: cloneTags(tags)}, versions: map[string]*mlflow.ModelVersion{}}
	m.models[name] = rm
	return m.registeredModel(rm), nil
}

func (m *Memory) registeredModel(rm *memModel) mlflow.RegisteredModel {
	out := rm.rm
	out.Tags = maps.Clone(rm.rm.Tags)
	out.Aliases = slices.Clone(rm.rm.Aliases)
	return out
}

// GetRegisteredModel returns a model with its tags and aliases.
func (m *Memory) GetRegisteredModel(_ context.Context, name string) (mlflow.RegisteredModel, error) {
	m.observe("registered-models/get")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, err := m.model("registered-models/get", name)
	if err != nil {
		return mlflow.RegisteredModel{}, err
	}
	return m.registeredModel(rm), nil
}

// RenameRegisteredModel renames a model; its versions, tags and aliases follow.
func (m *Memory) RenameRegisteredModel(_ context.Context, name, newName string) (mlflow.RegisteredModel, error) {
	m.observe("registered-models/rename")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, err := m.model("registered-models/rename", name)
	if err != nil {
		return mlflow.RegisteredModel{}, err
	}
	delete(m.models, name)
	rm.rm.Name = newName
	for _, mv := range rm.versions {
		mv.Name = newName
	}
	m.models[newName] = rm
	return m.registeredModel(rm), nil
}

// SetRegisteredModelTag sets one tag on a registered model.
func (m *Memory) SetRegisteredModelTag(_ context.Context, name, key, value string) error {
	m.observe("registered-models/set-tag")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, err := m.model("registered-models/set-tag", name)
	if err != nil {
		return err
	}
	rm.rm.Tags[key] = value
	return nil
}

// CreateModelVersion registers the next version of a model.
func (m *Memory) CreateModelVersion(_ context.Context, req mlflow.CreateModelVersionRequest) (mlflow.ModelVersion, error) {
	m.observe("model-versions/create")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, err := m.model("model-versions/create", req.Name)
	if err != nil {
		return mlflow.ModelVersion{}, err
	}
	if scheme, rest, ok := strings.Cut(req.Source, "://"); ok && scheme != "models" && !strings.Contains(rest, "/") {
		// The real server wants an absolute path after the host of an object store URI.
		return mlflow.ModelVersion{}, invalid("model-versions/create", "Invalid model version source: '%s'", req.Source)
	}
	if strings.HasPrefix(req.Source, "models:/") && req.ModelID == "" {
		return mlflow.ModelVersion{}, invalid("model-versions/create", "a models:/ source needs model_id")
	}
	for k, v := range req.Tags {
		if err := validTag("model-versions/create", k, v); err != nil {
			return mlflow.ModelVersion{}, err
		}
	}
	rm.next++
	now := m.stamp()
	mv := &mlflow.ModelVersion{Name: req.Name, Version: strconv.FormatInt(rm.next, 10), CreationTimestamp: now,
		LastUpdatedTimestamp: now, CurrentStage: "None", Description: req.Description, Source: req.Source,
		RunID: req.RunID, Status: "READY", RunLink: req.RunLink, Tags: cloneTags(req.Tags)}
	if rm.rm.IsPrompt() {
		mv.Tags[mlflow.PromptTag] = "true"
	}
	rm.versions[mv.Version] = mv
	rm.rm.LastUpdatedTimestamp = now
	return rm.withAliases(mv), nil
}

// validTag applies MLflow's limits on tag keys (250 characters) and values (5,000).
func validTag(endpoint, key, value string) error {
	switch {
	case key == "":
		return invalid(endpoint, "Missing value for required parameter 'key'")
	case !utf8.ValidString(key) || !utf8.ValidString(value):
		return invalid(endpoint, "tag key or value is not valid UTF-8")
	case utf8.RuneCountInString(key) > 250:
		return invalid(endpoint, "'key' exceeds the maximum length of 250 characters")
	case utf8.RuneCountInString(value) > 5000:
		return invalid(endpoint, "'value' exceeds the maximum length of 5000 characters")
	}
	return nil
}

// GetModelVersion returns a version with its tags and aliases.
func (m *Memory) GetModelVersion(_ context.Context, name, version string) (mlflow.ModelVersion, error) {
	m.observe("model-versions/get")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, mv, err := m.version("model-versions/get", name, version)
	if err != nil {
		return mlflow.ModelVersion{}, err
	}
	return rm.withAliases(mv), nil
}

// DeleteModelVersion soft-deletes a version: its number is never reused and every alias
// pointing at it goes with it.
func (m *Memory) DeleteModelVersion(_ context.Context, name, version string) error {
	m.observe("model-versions/delete")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, _, err := m.version("model-versions/delete", name, version)
	if err != nil {
		return err
	}
	delete(rm.versions, version)
	rm.rm.Aliases = slices.DeleteFunc(rm.rm.Aliases, func(a mlflow.Alias) bool { return a.Version == version })
	return nil
}

// SetModelVersionTag sets one tag; it does not bump last_updated_timestamp (nor does
// MLflow).
func (m *Memory) SetModelVersionTag(_ context.Context, name, version, key, value string) error {
	m.observe("model-versions/set-tag")
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := validTag("model-versions/set-tag", key, value); err != nil {
		return fmt.Errorf("set tag %s on %s/%s: %w", key, name, version, err)
	}
	_, mv, err := m.version("model-versions/set-tag", name, version)
	if err != nil {
		return fmt.Errorf("set tag %s on %s/%s: %w", key, name, version, err)
	}
	mv.Tags[key] = value
	return nil
}

// DeleteModelVersionTag deletes one tag; deleting an absent tag succeeds.
func (m *Memory) DeleteModelVersionTag(_ context.Context, name, version, key string) error {
	m.observe("model-versions/delete-tag")
	m.mu.Lock()
	defer m.mu.Unlock()
	_, mv, err := m.version("model-versions/delete-tag", name, version)
	if err != nil {
		return fmt.Errorf("delete tag %s on %s/%s: %w", key, name, version, err)
	}
	delete(mv.Tags, key)
	return nil
}

// UpdateModelVersionDescription replaces the description and bumps last_updated.
func (m *Memory) UpdateModelVersionDescription(_ context.Context, name, version, description string) (mlflow.ModelVersion, error) {
	m.observe("model-versions/update")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, mv, err := m.version("model-versions/update", name, version)
	if err != nil {
		return mlflow.ModelVersion{}, err
	}
	mv.Description = description
	mv.LastUpdatedTimestamp = m.stamp()
	return rm.withAliases(mv), nil
}

// SetAlias points an alias at a version, moving it if another held it.
func (m *Memory) SetAlias(_ context.Context, name, alias, version string) error {
	m.observe("registered-models/alias")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, _, err := m.version("registered-models/alias", name, version)
	if err != nil {
		return fmt.Errorf("set alias %s of %s to version %s: %w", alias, name, version, err)
	}
	rm.rm.Aliases = slices.DeleteFunc(rm.rm.Aliases, func(a mlflow.Alias) bool { return a.Alias == alias })
	rm.rm.Aliases = append(rm.rm.Aliases, mlflow.Alias{Alias: alias, Version: version})
	slices.SortFunc(rm.rm.Aliases, func(a, b mlflow.Alias) int { return strings.Compare(a.Alias, b.Alias) })
	return nil
}

// DeleteAlias removes an alias; removing an unset one succeeds.
func (m *Memory) DeleteAlias(_ context.Context, name, alias string) error {
	m.observe("registered-models/alias")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, err := m.model("registered-models/alias", name)
	if err != nil {
		return fmt.Errorf("delete alias %s of %s: %w", alias, name, err)
	}
	rm.rm.Aliases = slices.DeleteFunc(rm.rm.Aliases, func(a mlflow.Alias) bool { return a.Alias == alias })
	return nil
}

// RecordVote records, as the modelgate-auth app would, that user set (action "set") or
// deleted a vote tag of a version; action "create" records the version's creator.
func (m *Memory) RecordVote(name, version, key, user, action string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.voteRecords == nil {
		m.voteRecords = map[[2]string]*mlflow.VoteRecords{}
	}
	r := m.voteRecords[[2]string{name, version}]
	if r == nil {
		r = &mlflow.VoteRecords{}
		m.voteRecords[[2]string{name, version}] = r
	}
	if action == "create" {
		r.Creator = &mlflow.VoteCreator{User: user}
		return
	}
	r.Votes = append(r.Votes, mlflow.VoteRecord{Key: key, User: user, Action: action})
}

// GetVoteRecords returns what RecordVote recorded; with nothing ever recorded it answers
// as a server without the modelgate-auth app does.
func (m *Memory) GetVoteRecords(_ context.Context, name, version string) (mlflow.VoteRecords, error) {
	m.observe(mlflow.VoteRecordsPath)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.voteRecords == nil {
		return mlflow.VoteRecords{}, mlflow.ErrNoVoteRecords
	}
	if r := m.voteRecords[[2]string{name, version}]; r != nil {
		return mlflow.VoteRecords{Votes: slices.Clone(r.Votes), Creator: r.Creator}, nil
	}
	return mlflow.VoteRecords{}, nil
}

// GetModelVersionByAlias returns the version an alias points at; an unset alias is
// ErrNotFound.
func (m *Memory) GetModelVersionByAlias(_ context.Context, name, alias string) (mlflow.ModelVersion, error) {
	m.observe("registered-models/alias")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, err := m.model("registered-models/alias", name)
	if err != nil {
		return mlflow.ModelVersion{}, err
	}
	v, ok := rm.rm.AliasVersion(alias)
	if !ok {
		return mlflow.ModelVersion{}, notFound("registered-models/alias", "Registered model alias %s not found.", alias)
	}
	return rm.withAliases(rm.versions[v]), nil
}

// TransitionStage moves a version to a stage; with archiveExisting the other versions
// in that stage (Staging or Production only) move to Archived.
func (m *Memory) TransitionStage(_ context.Context, name, version, stage string, archiveExisting bool) (mlflow.ModelVersion, error) {
	m.observe("model-versions/transition-stage")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, mv, err := m.version("model-versions/transition-stage", name, version)
	if err != nil {
		return mlflow.ModelVersion{}, err
	}
	canonical := map[string]string{"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}[strings.ToLower(stage)]
	if canonical == "" {
		return mlflow.ModelVersion{}, invalid("model-versions/transition-stage", "Invalid Model Version stage: %s", stage)
	}
	now := m.stamp()
	if archiveExisting && (canonical == "Staging" || canonical == "Production") {
		for _, other := range rm.versions {
			if other != mv && other.CurrentStage == canonical {
				other.CurrentStage = "Archived"
				other.LastUpdatedTimestamp = now
			}
		}
	}
	mv.CurrentStage = canonical
	mv.LastUpdatedTimestamp = now
	return rm.withAliases(mv), nil
}

// GetLatestVersions returns the newest version in each stage asked for (every stage
// when none is).
func (m *Memory) GetLatestVersions(_ context.Context, name string, stages ...string) ([]mlflow.ModelVersion, error) {
	m.observe("registered-models/get-latest-versions")
	m.mu.Lock()
	defer m.mu.Unlock()
	rm, err := m.model("registered-models/get-latest-versions", name)
	if err != nil {
		return nil, err
	}
	latest := map[string]*mlflow.ModelVersion{}
	for _, mv := range rm.versions {
		if len(stages) > 0 && !slices.ContainsFunc(stages, func(s string) bool { return strings.EqualFold(s, mv.CurrentStage) }) {
			continue
		}
		if cur, ok := latest[mv.CurrentStage]; !ok || mlflow.CompareVersions(mv.Version, cur.Version) > 0 {
			latest[mv.CurrentStage] = mv
		}
	}
	var out []mlflow.ModelVersion
	for _, s := range slices.Sorted(maps.Keys(latest)) {
		out = append(out, rm.withAliases(latest[s]))
	}
	return out, nil
}

// SearchModelVersionsPage answers one page of a search: filters joined by AND on name,
// run_id and tags (= and LIKE), ordered by the given keys then name and version, paged
// by offset. Prompts and deleted versions are left out and aliases are empty, as the
// real server answers.
func (m *Memory) SearchModelVersionsPage(_ context.Context, opts mlflow.SearchOptions, pageToken string) ([]mlflow.ModelVersion, string, error) {
	m.observe("model-versions/search")
	match, err := parseFilter(opts.Filter)
	if err != nil {
		return nil, "", err
	}
	offset, err := pageOffset(pageToken)
	if err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	var all []mlflow.ModelVersion
	for _, rm := range m.models {
		if rm.rm.IsPrompt() {
			continue
		}
		for _, mv := range rm.versions {
			if match(mv) {
				all = append(all, copyVersion(mv))
			}
		}
	}
	m.mu.Unlock()
	less, err := ordering(opts.OrderBy)
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(all, less)
	page, next := paginate(all, offset, cmp.Or(opts.PageSize, 200000))
	return page, next, nil
}

// pageOffset reads an offset page token as the real server writes it: base64 of
// {"offset": N}.
func pageOffset(token string) (int, error) {
	if token == "" {
		return 0, nil
	}
	var tok struct{ Offset int }
	b, err := base64.StdEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(b, &tok) != nil {
		return 0, invalid("search", "Invalid page token, could not base64-decode")
	}
	return tok.Offset, nil
}

// paginate cuts a page at an offset; the real server hands out a next token whenever a
// page is full.
func paginate[T any](all []T, offset, size int) ([]T, string) {
	offset = min(offset, len(all))
	end := min(offset+size, len(all))
	page := all[offset:end]
	if len(page) < size {
		return page, ""
	}
	b, _ := json.Marshal(map[string]int{"offset": end})
	return page, base64.StdEncoding.EncodeToString(b)
}

// ModelVersionPages iterates over the pages of a search.
func (m *Memory) ModelVersionPages(ctx context.Context, opts mlflow.SearchOptions) iter.Seq2[[]mlflow.ModelVersion, error] {
	return func(yield func([]mlflow.ModelVersion, error) bool) {
		token := ""
		for {
			page, next, err := m.SearchModelVersionsPage(ctx, opts, token)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page, nil) || next == "" {
				return
			}
			token = next
		}
	}
}

// RegisteredModelPages pages through the registered models (prompts left out), with
// their aliases and the newest version in each stage, ordered by name.
func (m *Memory) RegisteredModelPages(_ context.Context, opts mlflow.SearchOptions) iter.Seq2[[]mlflow.RegisteredModel, error] {
	return func(yield func([]mlflow.RegisteredModel, error) bool) {
		m.observe("registered-models/search")
		m.mu.Lock()
		var all []mlflow.RegisteredModel
		for _, name := range slices.Sorted(maps.Keys(m.models)) {
			rm := m.models[name]
			if rm.rm.IsPrompt() {
				continue
			}
			out := m.registeredModel(rm)
			latest := map[string]*mlflow.ModelVersion{}
			for _, mv := range rm.versions {
				if cur, ok := latest[mv.CurrentStage]; !ok || mlflow.CompareVersions(mv.Version, cur.Version) > 0 {
					latest[mv.CurrentStage] = mv
				}
			}
			for _, st := range slices.Sorted(maps.Keys(latest)) {
				out.LatestVersions = append(out.LatestVersions, copyVersion(latest[st]))
			}
			all = append(all, out)
		}
		m.mu.Unlock()
		size := cmp.Or(opts.PageSize, 100)
		for off := 0; ; off += size {
			page, next := paginate(all, off, size)
			if !yield(page, nil) || next == "" {
				return
			}
			m.observe("registered-models/search")
		}
	}
}

// SearchModelVersions returns every matching version.
func (m *Memory) SearchModelVersions(ctx context.Context, opts mlflow.SearchOptions) ([]mlflow.ModelVersion, error) {
	var out []mlflow.ModelVersion
	for page, err := range m.ModelVersionPages(ctx, opts) {
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
	}
	return out, nil
}

// parseFilter understands the search filters modelgate and its tests use: conditions
// joined by AND on name, run_id and tags, with =, != and LIKE.
func parseFilter(filter string) (func(*mlflow.ModelVersion) bool, error) {
	match, err := parseConditions(filter, func(key string) (func(any) (string, bool), error) {
		switch {
		case key == "name":
			return func(x any) (string, bool) { return x.(*mlflow.ModelVersion).Name, true }, nil
		case key == "run_id":
			return func(x any) (string, bool) { return x.(*mlflow.ModelVersion).RunID, true }, nil
		case strings.HasPrefix(key, "tags."):
			tag := strings.Trim(strings.TrimPrefix(key, "tags."), "`")
			return func(x any) (string, bool) { v, ok := x.(*mlflow.ModelVersion).Tags[tag]; return v, ok }, nil
		}
		return nil, invalid("model-versions/search", "Invalid attribute key '%s' specified", key)
	})
	if err != nil {
		return nil, err
	}
	return func(mv *mlflow.ModelVersion) bool { return match(mv) }, nil
}

// parseConditions parses "key op 'value'" conditions joined by AND; field resolves a key
// to the getter of its value.
func parseConditions(filter string, field func(key string) (func(any) (string, bool), error)) (func(any) bool, error) {
	var conds []func(any) bool
	for _, c := range splitAnd(filter) {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		var key, op, value string
		for _, o := range []string{" LIKE ", " = ", " != "} {
			if k, v, ok := strings.Cut(c, o); ok {
				key, op, value = strings.TrimSpace(k), strings.TrimSpace(o), strings.TrimSpace(v)
				break
			}
		}
		if op == "" || len(value) < 2 || value[0] != '\'' || value[len(value)-1] != '\'' {
			return nil, invalid("search", "Invalid filter %q", c)
		}
		value = strings.ReplaceAll(value[1:len(value)-1], `\'`, `'`)
		get, err := field(key)
		if err != nil {
			return nil, err
		}
		conds = append(conds, func(x any) bool {
			v, ok := get(x)
			switch op {
			case "=":
				return ok && v == value
			case "!=":
				return ok && v != value
			}
			return ok && like(v, value)
		})
	}
	return func(x any) bool {
		for _, c := range conds {
			if !c(x) {
				return false
			}
		}
		return true
	}, nil
}

// splitAnd splits a filter at AND outside quotes.
func splitAnd(s string) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\'' && (i == 0 || s[i-1] != '\\'):
			quoted = !quoted
		case !quoted && strings.HasPrefix(s[i:], " AND "):
			parts = append(parts, s[start:i])
			start = i + len(" AND ")
			i += len(" AND ") - 1
		}
	}
	return append(parts, s[start:])
}

// like matches SQL LIKE with % and _ wildcards.
func like(s, pattern string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '%':
		for i := 0; i <= len(s); i++ {
			if like(s[i:], pattern[1:]) {
				return true
			}
		}
		return false
	case '_':
		_, size := utf8.DecodeRuneInString(s)
		return s != "" && like(s[size:], pattern[1:])
	}
	return s != "" && s[0] == pattern[0] && like(s[1:], pattern[1:])
}

// ordering builds the comparison of order_by, with MLflow's tie-breakers (name ASC,
// version DESC) and its default (last_updated_timestamp DESC).
func ordering(orderBy []string) (func(a, b mlflow.ModelVersion) int, error) {
	if len(orderBy) == 0 {
		orderBy = []string{"last_updated_timestamp DESC"}
	}
	type key struct {
		get  func(mlflow.ModelVersion) int64
		desc bool
	}
	var keys []key
	for _, ob := range orderBy {
		f := strings.Fields(ob)
		if len(f) == 0 || len(f) > 2 {
			return nil, invalid("model-versions/search", "Invalid order_by clause '%s'", ob)
		}
		k := key{desc: len(f) == 2 && strings.EqualFold(f[1], "DESC")}
		switch f[0] {
		case "creation_timestamp":
			k.get = func(mv mlflow.ModelVersion) int64 { return mv.CreationTimestamp }
		case "last_updated_timestamp":
			k.get = func(mv mlflow.ModelVersion) int64 { return mv.LastUpdatedTimestamp }
		case "version_number":
			k.get = func(mv mlflow.ModelVersion) int64 { n, _ := mv.Number(); return n }
		case "name":
			keys = append(keys, key{}) // handled by the tie-breaker below
			continue
		default:
			return nil, invalid("model-versions/search", "Invalid order_by clause '%s'", ob)
		}
		keys = append(keys, k)
	}
	return func(a, b mlflow.ModelVersion) int {
		for _, k := range keys {
			if k.get == nil {
				continue
			}
			if c := cmp.Compare(k.get(a), k.get(b)); c != 0 {
				if k.desc {
					return -c
				}
				return c
			}
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return -mlflow.CompareVersions(a.Version, b.Version)
	}, nil
}

// CreateExperiment creates an experiment and returns its id.
func (m *Memory) CreateExperiment(_ context.Context, name string) (string, error) {
	m.observe("experiments/create")
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.experiments[name]; ok {
		return "", &mlflow.Error{Method: "POST", Endpoint: "experiments/create", StatusCode: http.StatusBadRequest,
			Code: "RESOURCE_ALREADY_EXISTS", Message: fmt.Sprintf("Experiment '%s' already exists.", name)}
	}
	id := m.id("")
	m.experiments[name] = &mlflow.Experiment{ExperimentID: id, Name: name, LifecycleStage: "active", Tags: mlflow.Tags{}}
	return id, nil
}

// GetExperimentByName returns the id of the experiment with that name.
func (m *Memory) GetExperimentByName(ctx context.Context, name string) (string, error) {
	e, err := m.ExperimentByName(ctx, name)
	return e.ExperimentID, err
}

// ExperimentByName returns the experiment with that name and its tags.
func (m *Memory) ExperimentByName(_ context.Context, name string) (mlflow.Experiment, error) {
	m.observe("experiments/get-by-name")
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.experiments[name]
	if !ok {
		return mlflow.Experiment{}, notFound("experiments/get-by-name", "Could not find experiment with name '%s'", name)
	}
	out := *e
	out.Tags = cloneTags(e.Tags)
	return out, nil
}

// SetExperimentTag sets one tag on an experiment.
func (m *Memory) SetExperimentTag(_ context.Context, experimentID, key, value string) error {
	m.observe("experiments/set-experiment-tag")
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.experiments {
		if e.ExperimentID == experimentID {
			e.Tags[key] = value
			return nil
		}
	}
	return notFound("experiments/set-experiment-tag", "No Experiment with id=%s exists", experimentID)
}

// StartRun creates a run with its name, start time and tags.
func (m *Memory) StartRun(_ context.Context, spec mlflow.RunSpec) (mlflow.Run, error) {
	m.observe("runs/create")
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range spec.Tags {
		if err := validTag("runs/create", k, v); err != nil {
			return mlflow.Run{}, err
		}
	}
	start := spec.StartTime.UnixMilli()
	if spec.StartTime.IsZero() {
		start = m.stamp()
	}
	id := m.id("run")
	run := &mlflow.Run{Info: mlflow.RunInfo{RunID: id, RunName: spec.RunName, ExperimentID: spec.ExperimentID, Status: "RUNNING",
		StartTime: start, LifecycleStage: "active"}, Data: mlflow.RunData{Tags: cloneTags(spec.Tags)}}
	m.runs[id] = run
	return *run, nil
}

// SearchRunsPage answers one page of a run search: tag filters (= and LIKE) joined by
// AND, newest start time first, paged by offset.
func (m *Memory) SearchRunsPage(_ context.Context, opts mlflow.SearchRunsOptions, pageToken string) ([]mlflow.Run, string, error) {
	m.observe("runs/search")
	match, err := parseConditions(opts.Filter, func(key string) (func(any) (string, bool), error) {
		tag, ok := strings.CutPrefix(key, "tags.")
		if !ok {
			return nil, invalid("runs/search", "Invalid attribute key '%s' specified", key)
		}
		tag = strings.Trim(tag, "`")
		return func(x any) (string, bool) { v, ok := x.(*mlflow.Run).Data.Tags[tag]; return v, ok }, nil
	})
	if err != nil {
		return nil, "", err
	}
	offset, err := pageOffset(pageToken)
	if err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	var all []mlflow.Run
	for _, r := range m.runs {
		if slices.Contains(opts.ExperimentIDs, r.Info.ExperimentID) && match(r) {
			c := *r
			c.Data.Tags = cloneTags(r.Data.Tags)
			all = append(all, c)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(all, func(a, b mlflow.Run) int {
		return cmp.Or(-cmp.Compare(a.Info.StartTime, b.Info.StartTime), strings.Compare(a.Info.RunID, b.Info.RunID))
	})
	page, next := paginate(all, offset, cmp.Or(opts.PageSize, 1000))
	return page, next, nil
}

// RunPages iterates over the pages of a run search.
func (m *Memory) RunPages(ctx context.Context, opts mlflow.SearchRunsOptions) iter.Seq2[[]mlflow.Run, error] {
	return func(yield func([]mlflow.Run, error) bool) {
		token := ""
		for {
			page, next, err := m.SearchRunsPage(ctx, opts, token)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page, nil) || next == "" {
				return
			}
			token = next
		}
	}
}

// CreateRun starts a run in an experiment.
func (m *Memory) CreateRun(_ context.Context, experimentID, runName string) (mlflow.Run, error) {
	m.observe("runs/create")
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.id("run")
	run := &mlflow.Run{Info: mlflow.RunInfo{RunID: id, RunName: runName, ExperimentID: experimentID, Status: "RUNNING",
		StartTime: m.stamp(), LifecycleStage: "active"}, Data: mlflow.RunData{Tags: mlflow.Tags{}}}
	m.runs[id] = run
	return *run, nil
}

// LogInputs logs datasets on a run.
func (m *Memory) LogInputs(_ context.Context, runID string, datasets []mlflow.DatasetInput) error {
	m.observe("runs/log-inputs")
	m.mu.Lock()
	defer m.mu.Unlock()
	run, ok := m.runs[runID]
	if !ok {
		return notFound("runs/log-inputs", "Run '%s' not found", runID)
	}
	run.Inputs.DatasetInputs = append(run.Inputs.DatasetInputs, datasets...)
	return nil
}

// GetRun returns a run with the latest value of each metric.
func (m *Memory) GetRun(_ context.Context, runID string) (mlflow.Run, error) {
	m.observe("runs/get")
	m.mu.Lock()
	defer m.mu.Unlock()
	run, ok := m.runs[runID]
	if !ok {
		return mlflow.Run{}, notFound("runs/get", "Run '%s' not found", runID)
	}
	out := *run
	out.Inputs.DatasetInputs = slices.Clone(run.Inputs.DatasetInputs)
	out.Data.Tags = maps.Clone(run.Data.Tags)
	out.Data.Params = slices.Clone(run.Data.Params)
	latest := mlflow.LatestMetrics(run.Data.Metrics)
	out.Data.Metrics = nil
	for _, k := range slices.Sorted(maps.Keys(latest)) {
		out.Data.Metrics = append(out.Data.Metrics, mlflow.Metric{Key: k, Value: mlflow.Float(latest[k])})
	}
	return out, nil
}

// LogBatch logs metrics, params and tags to a run; a metric with ModelID is also logged
// against that logged model.
func (m *Memory) LogBatch(_ context.Context, runID string, metrics []mlflow.Metric, params []mlflow.Param, tags mlflow.Tags) error {
	m.observe("runs/log-batch")
	m.mu.Lock()
	defer m.mu.Unlock()
	run, ok := m.runs[runID]
	if !ok {
		return notFound("runs/log-batch", "Run '%s' not found", runID)
	}
	run.Data.Metrics = append(run.Data.Metrics, metrics...)
	for _, mt := range metrics {
		if lm, ok := m.loggedModels[mt.ModelID]; ok {
			lm.Data.Metrics = append(lm.Data.Metrics, mt)
		}
	}
	run.Data.Params = append(run.Data.Params, params...)
	maps.Copy(run.Data.Tags, tags)
	return nil
}

// SetRunTag sets one tag on a run.
func (m *Memory) SetRunTag(_ context.Context, runID, key, value string) error {
	m.observe("runs/set-tag")
	m.mu.Lock()
	defer m.mu.Unlock()
	run, ok := m.runs[runID]
	if !ok {
		return notFound("runs/set-tag", "Run '%s' not found", runID)
	}
	run.Data.Tags[key] = value
	return nil
}

// FinishRun marks a run FINISHED.
func (m *Memory) FinishRun(_ context.Context, runID string) error {
	m.observe("runs/update")
	m.mu.Lock()
	defer m.mu.Unlock()
	run, ok := m.runs[runID]
	if !ok {
		return notFound("runs/update", "Run '%s' not found", runID)
	}
	run.Info.Status, run.Info.EndTime = "FINISHED", m.stamp()
	return nil
}

// CreateLoggedModel creates an MLflow 3 logged model.
func (m *Memory) CreateLoggedModel(_ context.Context, experimentID, name, sourceRunID string, params []mlflow.Param) (mlflow.LoggedModel, error) {
	m.observe("logged-models")
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.id("m-")
	lm := &mlflow.LoggedModel{Info: mlflow.LoggedModelInfo{ModelID: id, ExperimentID: experimentID, Name: name,
		SourceRunID: sourceRunID, Status: "LOGGED_MODEL_READY", Tags: mlflow.Tags{}}, Data: mlflow.LoggedModelData{Params: params}}
	m.loggedModels[id] = lm
	return *lm, nil
}

// GetLoggedModel returns a logged model with its params and metrics.
func (m *Memory) GetLoggedModel(_ context.Context, modelID string) (mlflow.LoggedModel, error) {
	m.observe("logged-models/{id}")
	m.mu.Lock()
	defer m.mu.Unlock()
	lm, ok := m.loggedModels[modelID]
	if !ok {
		return mlflow.LoggedModel{}, notFound("logged-models/{id}", "Logged model with ID '%s' not found", modelID)
	}
	out := *lm
	out.Data.Metrics = slices.Clone(lm.Data.Metrics)
	out.Data.Params = slices.Clone(lm.Data.Params)
	return out, nil
}
