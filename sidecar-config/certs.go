package sidecarconfig

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CertsConfig says where to ask for a workload's certificate and where to
// write it.
type CertsConfig struct {
	Server string // glassmesh's HTTP API, e.g. http://127.0.0.1:20001
	// Token is the bearer token to present: a workload credential (a
	// Kubernetes service-account token or a glassmesh workload token), or
	// --api-token-file's with --attestation=off. TokenFile, when set, is
	// read before every request instead (the kubelet rotates projected
	// tokens in place).
	Token     string
	TokenFile string
	Workload  string // namespace/name
	Dir       string
	Client    *http.Client // nil: http.DefaultClient
	// KeyMode is key.pem's file mode; 0 means 0600. An injected pod's
	// certificate sidecar makes it readable to the app's user (0644) on a
	// memory volume only that pod mounts.
	KeyMode os.FileMode
}

// Certs is one fetched SVID.
type Certs struct {
	SPIFFEID  string    `json:"spiffeId"`
	CertChain string    `json:"certChain"`
	RootCert  string    `json:"rootCert"`
	ExpiresAt time.Time `json:"expiresAt"`
	key       []byte
}

// FetchCerts makes a key, asks the CA (POST /api/ca/certificates) for its
// certificate and writes key.pem, cert-chain.pem and root-cert.pem into
// cfg.Dir. The private key never leaves this process except into Dir.
func FetchCerts(ctx context.Context, cfg CertsConfig) (Certs, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certs{}, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return Certs{}, err
	}
	body, _ := json.Marshal(map[string]string{
		"workload": cfg.Workload,
		"csr":      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
	})
	url := strings.TrimSuffix(cfg.Server, "/") + "/api/ca/certificates"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Certs{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	token := cfg.Token
	if cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return Certs{}, fmt.Errorf("token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := cfg.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Certs{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Certs{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Certs{}, fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	var c Certs
	if err := json.Unmarshal(b, &c); err != nil {
		return Certs{}, fmt.Errorf("POST %s: %w", url, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Certs{}, err
	}
	c.key = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	mode := cfg.KeyMode
	if mode == 0 {
		mode = 0o600
	}
	return c, c.write(cfg.Dir, mode)
}

// write replaces the three files, each in one rename. The key goes first:
// a reader that catches the new key with the old chain fails to pair them
// and keeps its previous pair (grpc-go's file_watcher does).
func (c Certs) write(dir string, keyMode os.FileMode) error {
	dirMode := os.FileMode(0o700)
	if keyMode&0o044 != 0 {
		dirMode = 0o755 // others read the files
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, c.key, keyMode}, {CertChainFile, []byte(c.CertChain), 0o644}, {RootCertFile, []byte(c.RootCert), 0o644}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// WatchCerts keeps cfg.Dir's certificates fresh until ctx ends: it fetches
// them now, then again when half of their lifetime has passed, retrying
// failures with backoff (capped at a minute, and never past expiry without
// saying so in the log).
func WatchCerts(ctx context.Context, cfg CertsConfig, logger *slog.Logger) error {
	backoff := time.Second
	for {
		c, err := FetchCerts(ctx, cfg)
		wait := backoff
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			logger.Error("fetching the workload certificate failed; retrying", "workload", cfg.Workload, "error", err, "retryIn", backoff)
			backoff = min(2*backoff, time.Minute)
		} else {
			backoff = time.Second
			wait = time.Until(c.ExpiresAt) / 2
			logger.Info("workload certificate written", "workload", cfg.Workload, "spiffeId", c.SPIFFEID,
				"dir", cfg.Dir, "expiresAt", c.ExpiresAt, "renewIn", wait.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}
