// Command modelgate guards an MLflow model registry: it checks every new model version
// against a policy, then promotes it, rejects it, or asks a person to review it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/modelgate/modelgate/mlflow"
)

// Exit codes (PRODUCT.md).
const (
	exitOK       = 0
	exitPolicy   = 1 // policy or validation failure
	exitUsage    = 2 // usage or configuration error
	exitUpstream = 3 // MLflow unreachable or refused
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `modelgate guards an MLflow model registry.

Usage:
  modelgate run [--once] [--dry-run]           watch the registry: decide, promote, run reviews
  modelgate check [-f FILE]                    validate a policy file
  modelgate evaluate MODEL VERSION [--json]    print what the daemon would do with a version; changes nothing
  modelgate history MODEL [--alias NAME | --stage NAME] [--at TIME] [--json]
                                               which version held each alias or stage when, and who moved it
  modelgate version                            print the version

Configuration comes from the environment (see README.md).
`

// run is the whole program behind main, with its inputs injected so tests can drive it.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runDaemon(ctx, args[1:], environ, stdout, stderr)
	case "check":
		return runCheck(args[1:], environ, stdout, stderr)
	case "evaluate":
		return runEvaluate(ctx, args[1:], environ, stdout, stderr)
	case "history":
		return runHistory(ctx, args[1:], environ, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "modelgate %s (%s, %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "modelgate: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// buildVersion is the -ldflags version, else the module version `go install` recorded,
// else the VCS revision, else "dev".
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}

// exitCode maps an error to the exit codes of PRODUCT.md.
func exitCode(err error) int {
	var cfg *ConfigError
	var me *mlflow.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &cfg):
		return exitUsage
	case errors.Is(err, mlflow.ErrUnreachable), errors.As(err, &me), errors.Is(err, mlflow.ErrNotMLflow),
		errors.Is(err, mlflow.ErrTooManyPages), errors.Is(err, mlflow.ErrPagingLoop):
		return exitUpstream
	}
	return exitPolicy
}
