package ca

import (
	"crypto/tls"
	"net"
	"os"
	"sync"
	"time"
)

// Certificates that follow their source: a key pair on disk read again when
// it changes, and a serving certificate of the mesh CA issued again past
// half its life. Both keep the last good certificate when the new one
// cannot be had, and plug into tls.Config.GetCertificate.

// FileKeyPair is a certificate and key read from files, read again when
// either file's modification time changes (checked at most once a second).
type FileKeyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	mtimes  [2]time.Time
	checked time.Time
}

// NewFileKeyPair reads the pair once, so a bad file is an error at start-up
// rather than at the first handshake.
func NewFileKeyPair(certFile, keyFile string) (*FileKeyPair, error) {
	k := &FileKeyPair{certFile: certFile, keyFile: keyFile}
	if _, err := k.Get(); err != nil {
		return nil, err
	}
	return k, nil
}

// GetCertificate is for tls.Config.
func (k *FileKeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return k.Get() }

// Get returns the current pair: the files' when they changed and read
// cleanly, else the last good one (a renewal half written, a file briefly
// gone).
func (k *FileKeyPair) Get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cert != nil && time.Since(k.checked) < time.Second {
		return k.cert, nil
	}
	k.checked = time.Now()
	var mtimes [2]time.Time
	for i, f := range []string{k.certFile, k.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			if k.cert != nil {
				return k.cert, nil // keep serving the last good pair
			}
			return nil, err
		}
		mtimes[i] = st.ModTime()
	}
	if k.cert != nil && mtimes == k.mtimes {
		return k.cert, nil
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		if k.cert != nil {
			return k.cert, nil // a half-written renewal: the old pair still works
		}
		return nil, err
	}
	k.cert, k.mtimes = &c, mtimes
	return k.cert, nil
}

// ServingCert is a TLS serving certificate for host names and addresses
// (the injection webhook's), issued by the mesh CA and issued again past
// half of its life.
type ServingCert struct {
	ca  *CA
	dns []string
	ips []net.IP

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
}

// NewServingCert issues the first certificate for hosts (names, or
// addresses), so a CA that cannot issue is an error at start-up.
func NewServingCert(c *CA, hosts []string) (*ServingCert, error) {
	s := &ServingCert{ca: c}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			s.ips = append(s.ips, ip)
		} else {
			s.dns = append(s.dns, h)
		}
	}
	if _, err := s.GetCertificate(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// GetCertificate is for tls.Config.
func (s *ServingCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && time.Now().Before(s.renewAt) {
		return s.cert, nil
	}
	c, err := s.ca.IssueServing(s.dns, s.ips)
	if err != nil {
		if s.cert != nil {
			return s.cert, nil
		}
		return nil, err
	}
	pair, err := tls.X509KeyPair(c.ChainPEM, c.KeyPEM)
	if err != nil {
		return nil, err
	}
	s.cert, s.renewAt = &pair, time.Now().Add(time.Until(c.NotAfter)/2)
	return s.cert, nil
}
