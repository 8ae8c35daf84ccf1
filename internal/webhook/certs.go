package webhook

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// CertReloader serves a certificate from files and reads them again when
// either one's modification time changes, so a certificate renewed by
// cert-manager (which Kubernetes swaps into the mounted secret volume) is
// used without a restart. A renewal that cannot be loaded yet, such as a
// half-written pair, keeps the previous certificate until the next try.
type CertReloader struct {
	certFile, keyFile string
	every             time.Duration

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
	lastErr   error
}

// NewCertReloader loads certFile and keyFile (PEM), failing if they do not
// make a valid pair. The files are checked for changes at most once per
// second, on a TLS handshake.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, every: time.Second}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *CertReloader) load() error {
	cm, km, err := r.mtimes()
	if err != nil {
		return err
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("loading TLS key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certMod, r.keyMod = &c, cm, km
	return nil
}

func (r *CertReloader) mtimes() (cert, key time.Time, err error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("reading TLS certificate: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("reading TLS key: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// GetCertificate is a tls.Config GetCertificate that returns the current
// certificate, reloading it first if the files changed.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.lastCheck) >= r.every {
		r.lastCheck = now
		cm, km, err := r.mtimes()
		if err == nil && (!cm.Equal(r.certMod) || !km.Equal(r.keyMod)) {
			err = r.load()
		}
		r.lastErr = err
	}
	return r.cert, nil
}

// Err returns the error of the last reload attempt, nil when the files
// loaded or were unchanged.
func (r *CertReloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}
