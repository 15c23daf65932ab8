package remote

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"
)

// tlsFiles holds the CA pool and the node certificate loaded from
// Config.CAFile, CertFile and KeyFile, and reloads them when a file
// changes: every TLS handshake (both directions) first checks the files'
// size and modification time, so a rotated certificate or CA is used by
// the next connection without restarting the node. A reload that fails (a
// half-written file, a key that does not match) keeps the previous
// material and is reported by Transport.ReloadCertificates and logged.
type tlsFiles struct {
	caFile, certFile, keyFile string

	mu      sync.Mutex
	stamp   [3]fileStamp
	pool    *x509.CertPool
	cert    *tls.Certificate
	lastErr error
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// refresh reloads the files if any changed since the last load (or if
// force). It reports whether it loaded new material, and the error of a
// failed load.
func (f *tlsFiles) refresh(force bool) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var now [3]fileStamp
	for i, p := range []string{f.caFile, f.certFile, f.keyFile} {
		s, err := stampOf(p)
		if err != nil {
			f.lastErr = fmt.Errorf("remote: Config.%s: %w", [3]string{"CAFile", "CertFile", "KeyFile"}[i], err)
			return false, f.lastErr
		}
		now[i] = s
	}
	if !force && f.cert != nil && now == f.stamp {
		return false, nil
	}
	pemCA, err := os.ReadFile(f.caFile)
	if err != nil {
		f.lastErr = fmt.Errorf("remote: Config.CAFile: %w", err)
		return false, f.lastErr
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		f.lastErr = fmt.Errorf("remote: Config.CAFile = %q: no PEM certificate found", f.caFile)
		return false, f.lastErr
	}
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		f.lastErr = fmt.Errorf("remote: Config.CertFile/KeyFile: %w", err)
		return false, f.lastErr
	}
	f.pool, f.cert, f.stamp, f.lastErr = pool, &cert, now, nil
	return true, nil
}

// current returns the material to use for a handshake.
func (f *tlsFiles) current() (*x509.CertPool, *tls.Certificate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pool, f.cert
}

// serverConfig is the TLS configuration of the next inbound handshake.
func (f *tlsFiles) serverConfig(c *Config) *tls.Config {
	pool, cert := f.current()
	cfg := &tls.Config{
		Certificates: []tls.Certificate{*cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	if c.DisableClientAuth {
		cfg.ClientAuth = tls.NoClientCert
	}
	return cfg
}

// clientConfig is the TLS configuration of the next outbound handshake.
func (f *tlsFiles) clientConfig(c *Config) *tls.Config {
	pool, cert := f.current()
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		RootCAs:      pool,
		ServerName:   c.ServerName,
		MinVersion:   tls.VersionTLS13,
	}
}
