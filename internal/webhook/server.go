// Package webhook runs signet's admission webhook server: the admission
// handler over HTTPS with a certificate that is reloaded when renewed, and,
// on a separate plain-HTTP port, health and readiness probes and Prometheus
// metrics.
package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths served.
const (
	ValidatePath = "/validate"
	MutatePath   = "/mutate"
	HealthPath   = "/healthz"
	ReadyPath    = "/readyz"
	MetricsPath  = "/metrics"
)

// Server is the webhook's two HTTP servers.
type Server struct {
	certs    *CertReloader
	validate http.Handler
	gatherer prometheus.Gatherer
	o        options
	ready    atomic.Bool
}

type options struct {
	drain    time.Duration
	errorLog *log.Logger
	mutate   http.Handler
}

// Option configures a Server.
type Option func(*options)

// WithDrain sets how long the server keeps serving, reporting not ready,
// after it is told to stop, so that endpoints are updated before the listener
// closes (default 5s).
func WithDrain(d time.Duration) Option { return func(o *options) { o.drain = d } }

// WithMutator also serves h at POST /mutate, for a mutating webhook.
func WithMutator(h http.Handler) Option { return func(o *options) { o.mutate = h } }

// WithErrorLog sends the HTTP servers' own errors, such as failed TLS
// handshakes, to l at warn level (default: nowhere).
func WithErrorLog(l *slog.Logger) Option {
	return func(o *options) { o.errorLog = slog.NewLogLogger(l.Handler(), slog.LevelWarn) }
}

// New returns a server that answers admission reviews with validate over TLS
// with certs, and serves the metrics gathered by g.
func New(certs *CertReloader, validate http.Handler, g prometheus.Gatherer, opts ...Option) *Server {
	o := options{drain: 5 * time.Second, errorLog: log.New(io.Discard, "", 0)}
	for _, opt := range opts {
		opt(&o)
	}
	return &Server{certs: certs, validate: validate, gatherer: g, o: o}
}

// Run listens on addr (HTTPS) and metricsAddr (HTTP) and serves until ctx ends.
func (s *Server) Run(ctx context.Context, addr, metricsAddr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for admission reviews on %s: %w", addr, err)
	}
	mln, err := net.Listen("tcp", metricsAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listening for metrics on %s: %w", metricsAddr, err)
	}
	return s.Serve(ctx, ln, mln)
}

// Serve serves on the given listeners until ctx ends, then drains and shuts
// down gracefully.
func (s *Server) Serve(ctx context.Context, ln, metricsLn net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("POST "+ValidatePath, s.validate)
	if s.o.mutate != nil {
		mux.Handle("POST "+MutatePath, s.o.mutate)
	}
	mux.HandleFunc("GET "+HealthPath, ok)
	tlsSrv := &http.Server{
		Handler:           mux,
		ErrorLog:          s.o.errorLog,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.certs.GetCertificate,
		},
	}

	mmux := http.NewServeMux()
	mmux.HandleFunc("GET "+HealthPath, ok)
	mmux.HandleFunc("GET "+ReadyPath, s.readyz)
	mmux.Handle("GET "+MetricsPath, promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	metricsSrv := &http.Server{Handler: mmux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: s.o.errorLog}

	errc := make(chan error, 2)
	go func() { errc <- tlsSrv.ServeTLS(ln, "", "") }()
	go func() { errc <- metricsSrv.Serve(metricsLn) }()
	s.ready.Store(true)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serving: %w", err)
	}
	s.ready.Store(false)
	if err == nil && s.o.drain > 0 {
		time.Sleep(s.o.drain)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(err, tlsSrv.Shutdown(sctx), metricsSrv.Shutdown(sctx))
	return err
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "not serving", http.StatusServiceUnavailable)
		return
	}
	if err := s.certs.Err(); err != nil {
		// The previous certificate is still served; say so, but stay ready.
		_, _ = fmt.Fprintf(w, "ok (certificate reload failed: %v)\n", err)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
