package mlflow

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// SearchOptions selects and orders search results.
type SearchOptions struct {
	// Filter uses MLflow's search grammar, e.g. "name = 'm'" or
	// "tags.`modelgate.status` = 'pending_review'" (conditions joined by AND only).
	Filter string
	// OrderBy entries such as "creation_timestamp DESC". Model versions accept name,
	// version_number, creation_timestamp and last_updated_timestamp.
	OrderBy []string
	// PageSize is max_results per request. Zero lets the server choose: for model
	// versions that is every match in one page, for registered models 100.
	PageSize int
}

func (o SearchOptions) query(pageToken string) url.Values {
	q := url.Values{}
	if o.Filter != "" {
		q.Set("filter", o.Filter)
	}
	for _, ob := range o.OrderBy {
		q.Add("order_by", ob)
	}
	if o.PageSize > 0 {
		q.Set("max_results", strconv.Itoa(o.PageSize))
	}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	return q
}

// TagFilter returns a search filter matching versions whose tag key equals value. The
// key is back-quoted because modelgate's keys contain dots.
func TagFilter(key, value string) string {
	return fmt.Sprintf("tags.`%s` = '%s'", key, value)
}

// TagPresentFilter returns a search filter matching versions that carry the tag key,
// whatever its value.
func TagPresentFilter(key string) string {
	return fmt.Sprintf("tags.`%s` LIKE '%%'", key)
}

// SearchModelVersionsPage fetches one page. MLflow pages by offset (the token encodes
// {"offset": N}) and returns a token only when the page is full; rows created or deleted
// between pages can repeat or skip results, so callers that need every version must
// tolerate repeats and not rely on a single pass for completeness.
func (c *Client) SearchModelVersionsPage(ctx context.Context, opts SearchOptions, pageToken string) ([]ModelVersion, string, error) {
	var out struct {
		ModelVersions []ModelVersion `json:"model_versions"`
		NextPageToken string         `json:"next_page_token"`
	}
	if err := c.do(ctx, http.MethodGet, "model-versions/search", opts.query(pageToken), &out); err != nil {
		return nil, "", err
	}
	return out.ModelVersions, out.NextPageToken, nil
}

// ModelVersionPages iterates over the pages of a search, fetching the next page only
// when the caller asks for more; stop the loop to stop fetching. An error ends the
// sequence. Callers that decide page by page whether to go on (the reconciler stops at
// the first page with nothing new) use it; the others use ModelVersions.
func (c *Client) ModelVersionPages(ctx context.Context, opts SearchOptions) iter.Seq2[[]ModelVersion, error] {
	return pageSeq(func(token string) ([]ModelVersion, string, error) {
		return c.SearchModelVersionsPage(ctx, opts, token)
	})
}

// ModelVersions iterates over every matching version, page by page, fetching the next
// page only when the caller asks for more; stop the loop to stop fetching. An error ends
// the sequence.
func (c *Client) ModelVersions(ctx context.Context, opts SearchOptions) iter.Seq2[ModelVersion, error] {
	return flatten(c.ModelVersionPages(ctx, opts))
}

// SearchModelVersions returns every matching version, following every page. Prompts
// and deleted versions are never returned; aliases are always empty in search results.
func (c *Client) SearchModelVersions(ctx context.Context, opts SearchOptions) ([]ModelVersion, error) {
	return collect(c.ModelVersions(ctx, opts))
}

// SearchRegisteredModelsPage fetches one page of registered models.
func (c *Client) SearchRegisteredModelsPage(ctx context.Context, opts SearchOptions, pageToken string) ([]RegisteredModel, string, error) {
	var out struct {
		RegisteredModels []RegisteredModel `json:"registered_models"`
		NextPageToken    string            `json:"next_page_token"`
	}
	if err := c.do(ctx, http.MethodGet, "registered-models/search", opts.query(pageToken), &out); err != nil {
		return nil, "", err
	}
	return out.RegisteredModels, out.NextPageToken, nil
}

// RegisteredModelPages iterates over the pages of a registered-model search.
func (c *Client) RegisteredModelPages(ctx context.Context, opts SearchOptions) iter.Seq2[[]RegisteredModel, error] {
	return pageSeq(func(token string) ([]RegisteredModel, string, error) {
		return c.SearchRegisteredModelsPage(ctx, opts, token)
	})
}

// RegisteredModels iterates over every matching registered model (with aliases and tags).
func (c *Client) RegisteredModels(ctx context.Context, opts SearchOptions) iter.Seq2[RegisteredModel, error] {
	return flatten(c.RegisteredModelPages(ctx, opts))
}

// SearchRegisteredModels returns every matching registered model, following every page.
func (c *Client) SearchRegisteredModels(ctx context.Context, opts SearchOptions) ([]RegisteredModel, error) {
	return collect(c.RegisteredModels(ctx, opts))
}

// ErrPagingLoop is returned when the server hands out a page token it gave before:
// following it would never end.
var ErrPagingLoop = errors.New("MLflow returned a page token it had already returned")

// MaxPages bounds the pages one search follows: 1,000 pages is a million versions at the
// full scan's page size. A server that keeps handing out new page tokens past it is
// broken (or not MLflow), and the search ends with ErrTooManyPages.
const MaxPages = 1000

// ErrTooManyPages is returned when a search would follow more than MaxPages pages.
var ErrTooManyPages = errors.New("MLflow kept returning next_page_token")

// pageSeq turns a page fetcher into a sequence of pages, copying each next_page_token
// into the following request and stopping at the first page without one. A token the
// server handed out before ends the sequence with ErrPagingLoop: following it would
// never end.
func pageSeq[T any](fetch func(token string) ([]T, string, error)) iter.Seq2[[]T, error] {
	return func(yield func([]T, error) bool) {
		seen := map[string]bool{}
		token := ""
		for n := 1; ; n++ {
			items, next, err := fetch(token)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(items, nil) || next == "" {
				return
			}
			switch {
			case seen[next]:
				yield(nil, fmt.Errorf("%w: %q", ErrPagingLoop, next))
				return
			case n >= MaxPages:
				yield(nil, fmt.Errorf("%w after %d pages: stopped there (a registry this size is not MLflow's doing)", ErrTooManyPages, n))
				return
			}
			seen[next] = true
			token = next
		}
	}
}

// flatten turns a sequence of pages into a sequence of items.
func flatten[T any](pages iter.Seq2[[]T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for page, err := range pages {
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range page {
				if !yield(it, nil) {
					return
				}
			}
		}
	}
}

func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for it, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// GetModelVersion returns one version with its tags and aliases.
func (c *Client) GetModelVersion(ctx context.Context, name, version string) (ModelVersion, error) {
	var out struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	q := url.Values{"name": {name}, "version": {version}}
	if err := c.do(ctx, http.MethodGet, "model-versions/get", q, &out); err != nil {
		return ModelVersion{}, err
	}
	return out.ModelVersion, nil
}

// CreateModelVersionRequest describes a new version.
type CreateModelVersionRequest struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	RunID       string `json:"run_id,omitempty"`
	Tags        Tags   `json:"tags,omitempty"`
	RunLink     string `json:"run_link,omitempty"`
	Description string `json:"description,omitempty"`
	// ModelID names the MLflow 3 logged model when Source is "models:/<model_id>"; the
	// server refuses such a source without it.
	ModelID string `json:"model_id,omitempty"`
}

// CreateModelVersion registers a new version.
func (c *Client) CreateModelVersion(ctx context.Context, req CreateModelVersionRequest) (ModelVersion, error) {
	var out struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	if err := c.do(ctx, http.MethodPost, "model-versions/create", req, &out); err != nil {
		return ModelVersion{}, err
	}
	return out.ModelVersion, nil
}

// UpdateModelVersionDescription replaces the version's description (rendered as
// Markdown in the UI). Unlike tag edits, this bumps last_updated_timestamp.
func (c *Client) UpdateModelVersionDescription(ctx context.Context, name, version, description string) (ModelVersion, error) {
	var out struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	in := map[string]string{"name": name, "version": version, "description": description}
	if err := c.do(ctx, http.MethodPatch, "model-versions/update", in, &out); err != nil {
		return ModelVersion{}, err
	}
	return out.ModelVersion, nil
}

// DeleteModelVersion soft-deletes a version; every alias pointing at it goes with it.
func (c *Client) DeleteModelVersion(ctx context.Context, name, version string) error {
	return c.do(ctx, http.MethodDelete, "model-versions/delete", map[string]string{"name": name, "version": version}, nil)
}

// TransitionStage moves a version to a stage (None, Staging, Production, Archived).
// With archiveExisting, the other versions in the target stage move to Archived; MLflow
// allows that only for Staging and Production (and answers 500 otherwise).
func (c *Client) TransitionStage(ctx context.Context, name, version, stage string, archiveExisting bool) (ModelVersion, error) {
	var out struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	in := map[string]any{"name": name, "version": version, "stage": stage, "archive_existing_versions": archiveExisting}
	if err := c.do(ctx, http.MethodPost, "model-versions/transition-stage", in, &out); err != nil {
		return ModelVersion{}, err
	}
	return out.ModelVersion, nil
}

// SetModelVersionTag sets (or overwrites) one tag. It does not bump the version's
// last_updated_timestamp.
func (c *Client) SetModelVersionTag(ctx context.Context, name, version, key, value string) error {
	in := map[string]string{"name": name, "version": version, "key": key, "value": value}
	if err := c.do(ctx, http.MethodPost, "model-versions/set-tag", in, nil); err != nil {
		return fmt.Errorf("set tag %s on %s/%s: %w", key, name, version, err)
	}
	return nil
}

// DeleteModelVersionTag deletes one tag; deleting a tag that is not there succeeds.
// With basic auth this needs MANAGE on the model, where setting needs only EDIT.
func (c *Client) DeleteModelVersionTag(ctx context.Context, name, version, key string) error {
	in := map[string]string{"name": name, "version": version, "key": key}
	if err := c.do(ctx, http.MethodDelete, "model-versions/delete-tag", in, nil); err != nil {
		return fmt.Errorf("delete tag %s on %s/%s: %w", key, name, version, err)
	}
	return nil
}

// GetRegisteredModel returns a registered model with its tags and aliases.
func (c *Client) GetRegisteredModel(ctx context.Context, name string) (RegisteredModel, error) {
	var out struct {
		RegisteredModel RegisteredModel `json:"registered_model"`
	}
	if err := c.do(ctx, http.MethodGet, "registered-models/get", url.Values{"name": {name}}, &out); err != nil {
		return RegisteredModel{}, err
	}
	return out.RegisteredModel, nil
}

// CreateRegisteredModel creates a model; an existing name gives ErrAlreadyExists.
func (c *Client) CreateRegisteredModel(ctx context.Context, name string, tags Tags, description string) (RegisteredModel, error) {
	var out struct {
		RegisteredModel RegisteredModel `json:"registered_model"`
	}
	in := struct {
		Name        string `json:"name"`
		Tags        Tags   `json:"tags,omitempty"`
		Description string `json:"description,omitempty"`
	}{name, tags, description}
	if err := c.do(ctx, http.MethodPost, "registered-models/create", in, &out); err != nil {
		return RegisteredModel{}, err
	}
	return out.RegisteredModel, nil
}

// RenameRegisteredModel renames a model; its versions, tags and aliases follow.
func (c *Client) RenameRegisteredModel(ctx context.Context, name, newName string) (RegisteredModel, error) {
	var out struct {
		RegisteredModel RegisteredModel `json:"registered_model"`
	}
	if err := c.do(ctx, http.MethodPost, "registered-models/rename", map[string]string{"name": name, "new_name": newName}, &out); err != nil {
		return RegisteredModel{}, err
	}
	return out.RegisteredModel, nil
}

// DeleteRegisteredModel deletes a model and all its versions.
func (c *Client) DeleteRegisteredModel(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "registered-models/delete", map[string]string{"name": name}, nil)
}

// SetRegisteredModelTag sets one tag on a registered model.
func (c *Client) SetRegisteredModelTag(ctx context.Context, name, key, value string) error {
	in := map[string]string{"name": name, "key": key, "value": value}
	if err := c.do(ctx, http.MethodPost, "registered-models/set-tag", in, nil); err != nil {
		return fmt.Errorf("set tag %s on %s: %w", key, name, err)
	}
	return nil
}

// DeleteRegisteredModelTag deletes one tag of a registered model.
func (c *Client) DeleteRegisteredModelTag(ctx context.Context, name, key string) error {
	in := map[string]string{"name": name, "key": key}
	if err := c.do(ctx, http.MethodDelete, "registered-models/delete-tag", in, nil); err != nil {
		return fmt.Errorf("delete tag %s on %s: %w", key, name, err)
	}
	return nil
}

// SetAlias points alias at version, moving it if another version held it.
func (c *Client) SetAlias(ctx context.Context, name, alias, version string) error {
	in := map[string]string{"name": name, "alias": alias, "version": version}
	if err := c.do(ctx, http.MethodPost, "registered-models/alias", in, nil); err != nil {
		return fmt.Errorf("set alias %s of %s to version %s: %w", alias, name, version, err)
	}
	return nil
}

// DeleteAlias removes an alias; removing one that is not set succeeds.
func (c *Client) DeleteAlias(ctx context.Context, name, alias string) error {
	in := map[string]string{"name": name, "alias": alias}
	if err := c.do(ctx, http.MethodDelete, "registered-models/alias", in, nil); err != nil {
		return fmt.Errorf("delete alias %s of %s: %w", alias, name, err)
	}
	return nil
}

// GetModelVersionByAlias returns the version an alias points at. An unset alias gives
// ErrNotFound (the server itself answers 400 INVALID_PARAMETER_VALUE "Registered model
// alias X not found", which this method translates).
func (c *Client) GetModelVersionByAlias(ctx context.Context, name, alias string) (ModelVersion, error) {
	var out struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	err := c.do(ctx, http.MethodGet, "registered-models/alias", url.Values{"name": {name}, "alias": {alias}}, &out)
	var e *Error
	if errors.As(err, &e) && e.Code == "INVALID_PARAMETER_VALUE" && strings.Contains(e.Message, "alias") && strings.Contains(e.Message, "not found") {
		e.Code = "RESOURCE_DOES_NOT_EXIST"
	}
	if err != nil {
		return ModelVersion{}, err
	}
	return out.ModelVersion, nil
}

// GetLatestVersions returns, for each stage asked for (all stages when none), the
// newest version in it. Stages are deprecated in MLflow but still served.
func (c *Client) GetLatestVersions(ctx context.Context, name string, stages ...string) ([]ModelVersion, error) {
	var out struct {
		ModelVersions []ModelVersion `json:"model_versions"`
	}
	q := url.Values{"name": {name}}
	for _, s := range stages {
		q.Add("stages", s)
	}
	if err := c.do(ctx, http.MethodGet, "registered-models/get-latest-versions", q, &out); err != nil {
		return nil, err
	}
	return out.ModelVersions, nil
}
