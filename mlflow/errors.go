package mlflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Sentinel errors that callers branch on. An *Error matches them with errors.Is.
var (
	ErrNotFound         = errors.New("not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrInvalidParameter = errors.New("invalid parameter")
)

// Error is an MLflow API error: the HTTP status, MLflow's error_code and message, and the
// endpoint that returned it. Hint, when set, tells the user what to fix.
type Error struct {
	Method     string
	Endpoint   string // e.g. "model-versions/get"
	StatusCode int
	Code       string // MLflow error_code, e.g. RESOURCE_DOES_NOT_EXIST; empty for non-JSON bodies
	Message    string
	Hint       string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mlflow %s %s: HTTP %d", e.Method, e.Endpoint, e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

// Is matches the sentinel errors by error code and, for bodies without one, by status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == "RESOURCE_DOES_NOT_EXIST" || e.Code == "NOT_FOUND" ||
			(e.Code == "" && e.StatusCode == http.StatusNotFound)
	case ErrAlreadyExists:
		return e.Code == "RESOURCE_ALREADY_EXISTS" || e.Code == "ALREADY_EXISTS"
	case ErrPermissionDenied:
		return e.Code == "PERMISSION_DENIED" || (e.Code == "" && e.StatusCode == http.StatusForbidden && !e.hostRejected())
	case ErrUnauthenticated:
		return e.Code == "UNAUTHENTICATED" || e.Code == "CUSTOMER_UNAUTHORIZED" ||
			(e.Code == "" && e.StatusCode == http.StatusUnauthorized)
	case ErrInvalidParameter:
		return e.Code == "INVALID_PARAMETER_VALUE" || e.Code == "BAD_REQUEST"
	}
	return false
}

func (e *Error) hostRejected() bool { return strings.Contains(e.Message, "Invalid Host header") }

// IsNotFound reports whether err says the model, version, alias or run does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err says the object already exists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsPermissionDenied reports whether the MLflow user lacks a permission.
func IsPermissionDenied(err error) bool { return errors.Is(err, ErrPermissionDenied) }

// IsUnauthenticated reports whether MLflow refused the credentials.
func IsUnauthenticated(err error) bool { return errors.Is(err, ErrUnauthenticated) }

// maxMessage bounds how much of an error body ends up in an error string (and in logs).
const maxMessage = 512

// decodeError builds an *Error from a non-2xx response. MLflow answers JSON
// {"error_code", "message"} for API errors, but several layers in front of the handlers
// answer with text or HTML: basic-auth (401/403 text), the Host-header check (403 text),
// Flask's 404/405 pages for unknown paths. Those get a hint saying what to fix.
func decodeError(method, endpoint string, status int, header http.Header, body []byte) *Error {
	e := &Error{Method: method, Endpoint: endpoint, StatusCode: status}
	var wire struct {
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}
	if isJSON(body) && json.Unmarshal(body, &wire) == nil && (wire.ErrorCode != "" || wire.Message != "") {
		e.Code, e.Message = wire.ErrorCode, clip(wire.Message)
	} else {
		e.Message = textMessage(header, body)
	}
	switch {
	case e.Code != "":
		if status == http.StatusForbidden {
			e.Hint = "the MLflow user lacks a permission on this model: modelgate needs MANAGE on the models it guards"
		}
	case status == http.StatusUnauthorized:
		e.Hint = "MLflow requires authentication: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) and check they are right"
	case status == http.StatusForbidden && e.hostRejected():
		e.Hint = "the MLflow server does not accept the host name in MLFLOW_TRACKING_URI: add it to the server's --allowed-hosts (MLFLOW_SERVER_ALLOWED_HOSTS)"
	case status == http.StatusForbidden:
		e.Hint = "the MLflow user lacks a permission on this model: modelgate needs MANAGE on the models it guards"
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		e.Hint = "this is not an MLflow REST endpoint: check that MLFLOW_TRACKING_URI is the MLflow server's base URL and that the server runs MLflow 3"
	}
	return e
}

// textMessage summarises a body that is not an MLflow JSON error.
func textMessage(header http.Header, body []byte) string {
	ct, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	text := strings.TrimSpace(string(body))
	switch {
	case ct == "text/html" || strings.HasPrefix(strings.ToLower(text), "<!doctype") || strings.HasPrefix(text, "<html"):
		if t := htmlTitle(text); t != "" {
			return "HTML page: " + t
		}
		return "HTML page"
	case text == "":
		return ""
	case !utf8.ValidString(text):
		return fmt.Sprintf("%d bytes of non-text body", len(body))
	}
	return clip(strings.Join(strings.Fields(text), " "))
}

func htmlTitle(s string) string {
	lower := strings.ToLower(s)
	i := strings.Index(lower, "<title>")
	j := strings.Index(lower, "</title>")
	if i < 0 || j < i {
		return ""
	}
	return clip(strings.TrimSpace(s[i+len("<title>") : j]))
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
