package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelgate/modelgate/mlflow"
)

// minServer is the oldest MLflow release modelgate runs against; webhooksSince the
// first with registry webhooks (README: Supported MLflow servers).
var (
	minServer         = mlflow.ServerRelease{Major: 2, Minor: 22}
	webhooksSince     = mlflow.ServerRelease{Major: 3, Minor: 3}
	loggedModelsSince = mlflow.ServerRelease{Major: 3, Minor: 0}
)

// errServerTooOld refuses an MLflow older than minServer.
var errServerTooOld = errors.New("MLflow server too old")

// serverInfo is what modelgate learnt of its MLflow server at start-up.
type serverInfo struct {
	version      string // "" when the server could not be asked
	webhooks     bool   // registry webhooks (3.3+); true when unknown: registering says more
	loggedModels bool   // logged models (3.0+): versions registered from models:/m-…
}

// detectServer asks the server its release, once at start-up: a release older than
// minServer is refused; one without webhooks turns their registration off. A server that
// does not answer yet is not an error: the reconciler waits for it as it always does.
func detectServer(ctx context.Context, c *mlflow.Client, observe func(version string)) (serverInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.ServerVersion(ctx)
	if err != nil {
		return serverInfo{webhooks: true, loggedModels: true}, err
	}
	observe(v)
	r, _ := mlflow.ParseServerVersion(v)
	if !r.AtLeast(minServer.Major, minServer.Minor) {
		return serverInfo{version: v}, fmt.Errorf("%w: %s is MLflow %s; modelgate needs MLflow %d.%d or newer (aliases, search and paging as the compatibility tests prove them): upgrade the server",
			errServerTooOld, mlflow.WithoutCredentials(c.BaseURL()), v, minServer.Major, minServer.Minor)
	}
	return serverInfo{version: v, webhooks: r.AtLeast(webhooksSince.Major, webhooksSince.Minor),
		loggedModels: r.AtLeast(loggedModelsSince.Major, loggedModelsSince.Minor)}, nil
}
