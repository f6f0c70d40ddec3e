package mlflow

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tlsServer serves a model version over TLS and counts the connections made to it.
func tlsServer(t *testing.T, clientCAs *x509.CertPool) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(versionJSON))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are what some tests provoke
	if clientCAs != nil {
		srv.TLS = &tls.Config{ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func writePEM(t *testing.T, name string, blocks ...*pem.Block) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tlsClient(t *testing.T, srv *httptest.Server, opts Options) *Client {
	t.Helper()
	opts.TrackingURI = srv.URL
	opts.BackoffFactor, opts.BackoffJitter = time.Millisecond, time.Millisecond
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServerCertPath(t *testing.T) {
	srv, _ := tlsServer(t, nil)
	ca := writePEM(t, "ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c := tlsClient(t, srv, Options{ServerCertPath: ca})
	if _, err := c.GetModelVersion(context.Background(), "m", "3"); err != nil {
		t.Fatalf("with the server's CA: %v", err)
	}
}

func TestUnknownCertificateIsNotRetried(t *testing.T) {
	srv, conns := tlsServer(t, nil)
	c := tlsClient(t, srv, Options{MaxRetries: 3})
	_, err := c.GetModelVersion(context.Background(), "m", "3")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1: a retry cannot fix an untrusted certificate", n)
	}
}

func TestInsecureTLS(t *testing.T) {
	srv, _ := tlsServer(t, nil)
	c := tlsClient(t, srv, Options{InsecureTLS: true})
	if _, err := c.GetModelVersion(context.Background(), "m", "3"); err != nil {
		t.Fatalf("with MLFLOW_TRACKING_INSECURE_TLS: %v", err)
	}
	if _, err := New(Options{TrackingURI: srv.URL, InsecureTLS: true, ServerCertPath: "/ca.pem"}); err == nil {
		t.Fatal("insecure TLS together with a CA bundle was accepted")
	}
}

func TestClientCertPath(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "modelgate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv, _ := tlsServer(t, pool)

	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	both := writePEM(t, "client.pem", &pem.Block{Type: "CERTIFICATE", Bytes: der}, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	c := tlsClient(t, srv, Options{InsecureTLS: true, ClientCertPath: both})
	if _, err := c.GetModelVersion(context.Background(), "m", "3"); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	without := tlsClient(t, srv, Options{InsecureTLS: true})
	if _, err := without.GetModelVersion(context.Background(), "m", "3"); err == nil {
		t.Fatal("server requiring a client certificate accepted a client without one")
	}

	certOnly := writePEM(t, "cert-only.pem", &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_, err = New(Options{TrackingURI: srv.URL, ClientCertPath: certOnly})
	if err == nil || !strings.Contains(err.Error(), "MLFLOW_TRACKING_CLIENT_CERT_PATH") {
		t.Fatalf("client cert without key: err = %v, want one naming MLFLOW_TRACKING_CLIENT_CERT_PATH", err)
	}
	_, err = New(Options{TrackingURI: srv.URL, ServerCertPath: filepath.Join(t.TempDir(), "missing.pem")})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "MLFLOW_TRACKING_SERVER_CERT_PATH") {
		t.Fatalf("missing CA file: err = %v", err)
	}
}
