package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/mlflow"
)

// TestDetectServer: the release a server answers on /version decides what modelgate
// does with it. The releases make test-compat runs (2.22.5, 3.0.1, 3.3.2, 3.18.0) are
// also seen for real there (TestLostWebhookCaughtByPolling); the others are imitated.
func TestDetectServer(t *testing.T) {
	for _, tc := range []struct {
		version      string
		tooOld       bool
		webhooks     bool
		loggedModels bool
	}{
		{"2.15.1", true, false, false},
		{"2.21.3", true, false, false},
		{"2.22.5", false, false, false},
		{"3.0.1", false, false, true},
		{"3.3.2", false, true, true},
		{"3.18.0", false, true, true},
		{"3.19.0.dev0", false, true, true},
	} {
		t.Run(tc.version, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/version" {
					http.NotFound(w, r)
					return
				}
				_, _ = w.Write([]byte(tc.version))
			}))
			defer srv.Close()
			c, err := mlflow.New(mlflow.Options{TrackingURI: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			var observed string
			info, err := detectServer(context.Background(), c, func(v string) { observed = v })
			if tc.tooOld {
				if !errors.Is(err, errServerTooOld) || !strings.Contains(err.Error(), "needs MLflow 2.22 or newer") || !strings.Contains(err.Error(), tc.version) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || info.version != tc.version || info.webhooks != tc.webhooks || info.loggedModels != tc.loggedModels || observed != tc.version {
				t.Fatalf("info %+v, observed %q, err %v", info, observed, err)
			}
		})
	}
}

// TestDetectServerThatIsNotMLflow: an answer that is not a release number is an error
// that names the URL, and start-up goes on (registering webhooks as for 3.3+).
func TestDetectServerThatIsNotMLflow(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>login</html>")) }))
	defer srv.Close()
	c, err := mlflow.New(mlflow.Options{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	info, err := detectServer(context.Background(), c, func(string) { t.Error("observed a version") })
	if err == nil || errors.Is(err, errServerTooOld) || !strings.Contains(err.Error(), "not a release number") || !info.webhooks {
		t.Fatalf("info %+v, err %v", info, err)
	}
}
