package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/glassmesh/glassmesh/control/ca"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

// caFlags are run's CA flags.
type caFlags struct {
	trustDomain     string
	certFile, keyFn string
	ttl             time.Duration
}

func (f *caFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.trustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain of workload identities")
	fs.StringVar(&f.certFile, "ca-cert", "", "PEM CA certificate (a root, or an intermediate followed by its chain) to sign workload certificates with, instead of the one generated in --data-dir/ca")
	fs.StringVar(&f.keyFn, "ca-key", "", "PEM private key of --ca-cert")
	fs.DurationVar(&f.ttl, "cert-ttl", ca.DefaultTTL, "lifetime of issued workload certificates; workloads renew at half of it")
}

// newCA opens the mesh CA and serves POST /api/ca/certificates. Today the
// API token holder may mint any workload's identity.
func (a *app) newCA() error {
	f := a.flags.ca
	c, err := ca.New(ca.Config{DataDir: a.flags.dataDir, TrustDomain: f.trustDomain, CertFile: f.certFile, KeyFile: f.keyFn, TTL: f.ttl},
		a.logger.With("component", "ca"), a.reg)
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	a.ca = c
	resolve := func(ns, name string) (string, bool) {
		m, _ := a.store.Mesh()
		w := m.Workload(ns, name)
		if w == nil {
			return "", false
		}
		return w.Spec.ServiceAccount, true
	}
	a.mux.Handle("POST /api/ca/certificates", a.requireToken(a.whenLoaded(c.Handler(resolve))))
	return nil
}

// whenLoaded answers 503 (retry in a second) until the first mesh config
// serves: before it, every workload would be "not in the mesh config".
func (a *app) whenLoaded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.store.Loaded() {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"the mesh config is not loaded yet"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func newSidecarCertsCmd() *cobra.Command {
	var (
		cfg       sidecarconfig.CertsConfig
		tokenFile string
		watch     bool
		logFlags  runFlags
		keyMode   uint32
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Fetch one workload's SPIFFE certificate from glassmesh's CA into a directory (and keep it fresh with --watch)",
		Long: `certs makes a private key, asks a running glassmesh's CA for the workload's
certificate (POST /api/ca/certificates) and writes cert-chain.pem, key.pem and
root-cert.pem into --dir, the files a proxyless bootstrap's file_watcher
certificate provider reads. With --watch it renews them at half their lifetime
until stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ns, name, ok := strings.Cut(cfg.Workload, "/"); !ok || ns == "" || name == "" {
				return fmt.Errorf("--workload: want NAMESPACE/NAME, got %q", cfg.Workload)
			}
			if tokenFile != "" {
				tok, err := (&runFlags{apiTokenFile: tokenFile}).apiToken()
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				cfg.Token = tok
			}
			logger, err := logFlags.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg.KeyMode = os.FileMode(keyMode)
			if watch {
				return sidecarconfig.WatchCerts(cmd.Context(), cfg, logger)
			}
			c, err := sidecarconfig.FetchCerts(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, expires %s\n", cfg.Dir, c.SPIFFEID, c.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Workload, "workload", "", "the workload, NAMESPACE/NAME (required)")
	fs.StringVar(&cfg.Dir, "dir", "./certs", "directory to write cert-chain.pem, key.pem and root-cert.pem to")
	fs.StringVar(&cfg.Server, "server", "http://127.0.0.1:20001", "URL of glassmesh's HTTP API")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the bearer token of --api-token-file")
	fs.BoolVar(&watch, "watch", false, "keep running and renew the certificate at half its lifetime")
	fs.Uint32Var(&keyMode, "key-mode", 0o600, "file mode of key.pem (octal, e.g. 0644 when another user in the pod reads it)")
	fs.StringVar(&logFlags.logLevel, "log.level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&logFlags.logFormat, "log.format", "text", "log format: text or json")
	return cmd
}
