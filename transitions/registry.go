package transitions

import (
	"context"
	"iter"
	"log/slog"

	"github.com/modelgate/modelgate/mlflow"
)

// Reader is what the reconciler reads from MLflow. *mlflow.Client satisfies it.
type Reader interface {
	PlanReader
	// ModelVersionPages pages through a search (MLflow pages by offset).
	ModelVersionPages(ctx context.Context, opts mlflow.SearchOptions) iter.Seq2[[]mlflow.ModelVersion, error]
	// RegisteredModelPages pages through the registered models, with their aliases and
	// the newest version in each stage.
	RegisteredModelPages(ctx context.Context, opts mlflow.SearchOptions) iter.Seq2[[]mlflow.RegisteredModel, error]
}

// Writer is every change the reconciler makes to MLflow. *mlflow.Client satisfies it;
// DryRun logs instead of writing.
type Writer interface {
	SetModelVersionTag(ctx context.Context, name, version, key, value string) error
	DeleteModelVersionTag(ctx context.Context, name, version, key string) error
	UpdateModelVersionDescription(ctx context.Context, name, version, description string) (mlflow.ModelVersion, error)
	SetAlias(ctx context.Context, name, alias, version string) error
	DeleteAlias(ctx context.Context, name, alias string) error
	TransitionStage(ctx context.Context, name, version, stage string, archiveExisting bool) (mlflow.ModelVersion, error)
}

// DryRun is a Writer that logs each write it would make and makes none
// (MODELGATE_DRY_RUN): the one place where dry-run differs from a real run.
type DryRun struct{ Logger *slog.Logger }

func (d DryRun) log(ctx context.Context, msg string, args ...any) {
	d.Logger.InfoContext(ctx, "dry-run: would "+msg, args...)
}

// SetModelVersionTag logs the tag it would set.
func (d DryRun) SetModelVersionTag(ctx context.Context, name, version, key, value string) error {
	d.log(ctx, "set tag", "model", name, "version", version, "key", key, "value", value)
	return nil
}

// DeleteModelVersionTag logs the tag it would delete.
func (d DryRun) DeleteModelVersionTag(ctx context.Context, name, version, key string) error {
	d.log(ctx, "delete tag", "model", name, "version", version, "key", key)
	return nil
}

// UpdateModelVersionDescription logs the description it would write.
func (d DryRun) UpdateModelVersionDescription(ctx context.Context, name, version, description string) (mlflow.ModelVersion, error) {
	d.log(ctx, "update description", "model", name, "version", version, "length", len(description))
	return mlflow.ModelVersion{Name: name, Version: version, Description: description}, nil
}

// SetAlias logs the alias it would move.
func (d DryRun) SetAlias(ctx context.Context, name, alias, version string) error {
	d.log(ctx, "set alias", "model", name, "alias", alias, "version", version)
	return nil
}

// DeleteAlias logs the alias it would delete.
func (d DryRun) DeleteAlias(ctx context.Context, name, alias string) error {
	d.log(ctx, "delete alias", "model", name, "alias", alias)
	return nil
}

// TransitionStage logs the stage transition it would make.
func (d DryRun) TransitionStage(ctx context.Context, name, version, stage string, archiveExisting bool) (mlflow.ModelVersion, error) {
	d.log(ctx, "transition stage", "model", name, "version", version, "stage", stage, "archive_existing", archiveExisting)
	return mlflow.ModelVersion{Name: name, Version: version, CurrentStage: stage}, nil
}
