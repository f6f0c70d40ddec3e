package mlflow

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/jarcoal/httpmock"
)

// FuzzDecodeResponse feeds arbitrary bodies and statuses through the client's response
// handling: whatever a server or proxy sends, the client returns a value or an error and
// never panics. The seed corpus is in testdata/fuzz/FuzzDecodeResponse.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(200, []byte(`{"model_versions":[{"name":"m","version":"1","tags":[{"key":"a","value":"b"}]}],"next_page_token":"eyJvZmZzZXQiOiAyfQ=="}`))
	f.Add(200, []byte(`{"run":{"info":{"run_id":"r"},"data":{"metrics":[{"key":"a","value":"NaN"},{"key":"b","value":1.7976931348623157e+308}]}}}`))
	f.Add(404, []byte(`{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Model Version (name=m, version=9) not found"}`))
	f.Add(404, []byte("<!doctype html><title>404 Not Found</title>"))
	f.Add(401, []byte("You are not authenticated."))
	f.Add(200, []byte(`{"model_versions":[{"tags":{"a":"b"}}]}`))
	f.Add(200, []byte(`{"model_versions":`))
	f.Add(200, []byte{0xff, 0xfe, 0x00})
	f.Fuzz(func(t *testing.T, code int, body []byte) {
		if code < 100 || code > 599 {
			code = 200 + (code%400+400)%400
		}
		mt := httpmock.NewMockTransport()
		mt.RegisterNoResponder(func(*http.Request) (*http.Response, error) {
			return httpmock.NewBytesResponse(code, body), nil
		})
		c, err := New(Options{TrackingURI: mockURI, Transport: mt, MaxRetries: 0})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		versions, _, err := c.SearchModelVersionsPage(ctx, SearchOptions{}, "")
		if err == nil && code/100 != 2 {
			t.Fatalf("status %d decoded as success", code)
		}
		var e *Error
		if code/100 != 2 && !errors.As(err, &e) {
			t.Fatalf("status %d: err = %v, want *Error", code, err)
		}
		for _, mv := range versions {
			_ = mv.IsPrompt()
			_ = mv.LoggedModelID()
			_, _ = mv.Number()
		}
		if run, err := c.GetRun(ctx, "r"); err == nil {
			_ = LatestMetrics(run.Data.Metrics)
		}
		_, _ = c.GetLoggedModel(ctx, "m-1")
	})
}
