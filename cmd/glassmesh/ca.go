package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/glassmesh/glassmesh/control/ca"
	"github.com/glassmesh/glassmesh/control/xds"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

// caFlags are run's CA flags.
type caFlags struct {
	trustDomain     string
	certFile, keyFn string
	ttl             time.Duration
	attestation     string
	audience        string
}

// Attestation modes: who must prove which workload it is.
const (
	attestCA  = "ca"  // certificates need a workload credential; xDS checks one presented
	attestAll = "all" // xDS streams need one too
	attestOff = "off" // the API token's holder may have any certificate (before attestation)
)

func (f *caFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.trustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain of workload identities")
	fs.StringVar(&f.certFile, "ca-cert", "", "PEM CA certificate (a root, or an intermediate followed by its chain) to sign workload certificates with, instead of the one generated in --data-dir/ca")
	fs.StringVar(&f.keyFn, "ca-key", "", "PEM private key of --ca-cert")
	fs.DurationVar(&f.ttl, "cert-ttl", ca.DefaultTTL, "lifetime of issued workload certificates; workloads renew at half of it")
	fs.StringVar(&f.attestation, "attestation", attestCA, "who must prove which workload it is: "+
		"ca (a certificate is issued only to a caller whose bearer token, a Kubernetes service-account token for --attestation.audience or a glassmesh workload token, "+
		"proves that workload's service account; xDS clients presenting a token or a SPIFFE certificate may act only as such a workload), "+
		"all (as ca, and xDS clients without either are refused), off (anyone holding --api-token-file's token gets any workload's certificate)")
	fs.StringVar(&f.audience, "attestation.audience", ca.DefaultAudience, "audience Kubernetes projected service-account tokens and glassmesh workload tokens must be minted for")
}

func (f *caFlags) check() error {
	switch f.attestation {
	case attestCA, attestAll, attestOff:
		return nil
	}
	return fmt.Errorf("--attestation: %q is not ca, all or off", f.attestation)
}

// newCA opens the mesh CA and serves POST /api/ca/certificates (to callers
// that prove the workload, unless --attestation=off) and POST
// /api/ca/tokens (workload tokens, for the operator).
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
	if f.attestation == attestOff {
		a.mux.Handle("POST /api/ca/certificates", a.requireToken(a.whenLoaded(c.Handler(resolve, nil))))
	} else {
		a.mux.Handle("POST /api/ca/certificates", a.whenLoaded(c.Handler(resolve, a.attestor.HTTPAuthorizer(a.podWorkload()))))
	}
	a.mux.Handle("POST /api/ca/tokens", a.requireOperator(c.TokenHandler(f.audience)))
	return nil
}

// newAttestor says who bearer tokens prove their holders to be: workload
// tokens of this CA and, with the Kubernetes source, service-account tokens
// through the API server's TokenReview.
func (a *app) newAttestor() error {
	var reviewer ca.TokenReviewer
	if a.kube != nil {
		cs, err := a.newKubeClient()
		if err != nil {
			return fmt.Errorf("token review: %w", err)
		}
		reviewer = ca.KubeTokenReviewer{Client: cs}
	}
	a.attestor = ca.NewAttestor(func() *ca.CA { return a.ca }, a.flags.ca.audience, reviewer)
	return nil
}

// podWorkload names a pod's workload, for pod-bound tokens (Kubernetes).
func (a *app) podWorkload() func(namespace, pod string) (string, bool) {
	if a.kube == nil {
		return nil
	}
	return a.kube.PodWorkload
}

// xdsAuthorizer is the xDS server's check of who a client may act as,
// built once; it reads the CA and the serving mesh when a stream asks.
func (a *app) xdsAuthorizer() func(ctx context.Context, namespace, workload string) error {
	if a.flags.ca.attestation == attestOff {
		return xds.SPIFFEAuthorizer(a.workloadIdentity)
	}
	return xds.AttestedAuthorizer(xds.Attestation{
		Workload: func(ns, name string) (string, string, bool) {
			m, _ := a.store.Mesh()
			w := m.Workload(ns, name)
			if w == nil {
				return "", "", false
			}
			return a.ca.ID(w.Namespace, w.Spec.ServiceAccount), w.Spec.ServiceAccount, true
		},
		Attest:      a.attestor.Attest,
		PodWorkload: a.podWorkload(),
		Required:    a.flags.ca.attestation == attestAll,
	})
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
			cfg.TokenFile = tokenFile
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
	fs.StringVar(&tokenFile, "token-file", "", "file holding the workload's credential, read before every request: a Kubernetes projected service-account token "+
		"or a glassmesh workload token (glassmesh ca token); with --attestation=off, --api-token-file's token")
	fs.BoolVar(&watch, "watch", false, "keep running and renew the certificate at half its lifetime")
	fs.Uint32Var(&keyMode, "key-mode", 0o600, "file mode of key.pem (octal, e.g. 0644 when another user in the pod reads it)")
	fs.StringVar(&logFlags.logLevel, "log.level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&logFlags.logFormat, "log.format", "text", "log format: text or json")
	return cmd
}

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "The mesh CA: workload tokens"}
	cmd.AddCommand(newCATokenCmd())
	return cmd
}

func newCATokenCmd() *cobra.Command {
	var (
		req                  ca.TokenRequest
		server, tokenFile    string
		dataDir, cert, key   string
		audience, outputFile string
		trustDomain          string
	)
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint a workload token: the credential a workload outside Kubernetes presents for its certificate and xDS config",
		Long: `token mints a glassmesh workload token, a JWT signed with the mesh CA's key
that lets its holder get certificates and xDS config of workloads running as
--namespace/--service-account (only --workload, when given) until it expires.
Give it to exactly that workload (sidecar certs --token-file, and the
bootstrap's xDS call credentials). With --server it asks a running glassmesh
(POST /api/ca/tokens, with --token-file holding --api-token-file's operator
token); with --data-dir (or --ca-cert/--ca-key) it signs offline with the CA
files there. Rotating the CA key revokes every token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var tok string
			switch {
			case server != "":
				t, err := requestToken(cmd.Context(), server, tokenFile, req)
				if err != nil {
					return err
				}
				tok = t
			case dataDir != "" || cert != "":
				if cert == "" {
					cert, key = filepath.Join(dataDir, "ca", "root-cert.pem"), filepath.Join(dataDir, "ca", "root-key.pem")
				}
				c, err := ca.New(ca.Config{CertFile: cert, KeyFile: key, TrustDomain: trustDomain}, slog.New(slog.DiscardHandler), nil)
				if err != nil {
					return err
				}
				ttl, err := time.ParseDuration(req.TTL)
				if err != nil {
					return fmt.Errorf("--ttl: %w", err)
				}
				if tok, err = c.MintToken(req.Namespace, req.ServiceAccount, req.Workload, audience, ttl); err != nil {
					return err
				}
			default:
				return errors.New("say where the CA is: --server URL (a running glassmesh) or --data-dir DIR (its data dir)")
			}
			if outputFile == "" {
				fmt.Fprintln(cmd.OutOrStdout(), tok)
				return nil
			}
			return os.WriteFile(outputFile, []byte(tok+"\n"), 0o600)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&req.Namespace, "namespace", "default", "the workload's namespace")
	fs.StringVar(&req.ServiceAccount, "service-account", "", "the workload's service account (required)")
	fs.StringVar(&req.Workload, "workload", "", "bind the token to this one workload (its name in --namespace)")
	fs.StringVar(&req.TTL, "ttl", "24h", "how long the token is valid")
	fs.StringVar(&server, "server", "", "URL of a running glassmesh's HTTP API")
	fs.StringVar(&tokenFile, "token-file", "", "with --server: file holding the operator token of --api-token-file")
	fs.StringVar(&dataDir, "data-dir", "", "offline: glassmesh's data dir, whose ca/ holds the CA")
	fs.StringVar(&cert, "ca-cert", "", "offline: the CA certificate (as glassmesh run --ca-cert)")
	fs.StringVar(&key, "ca-key", "", "offline: the CA key (as glassmesh run --ca-key)")
	fs.StringVar(&audience, "audience", ca.DefaultAudience, "offline: the audience (glassmesh run --attestation.audience)")
	fs.StringVar(&trustDomain, "trust-domain", ca.DefaultTrustDomain, "offline: the trust domain (glassmesh run --trust-domain), for the token's subject")
	fs.StringVarP(&outputFile, "output", "o", "", "write the token to this file (mode 0600) instead of stdout")
	return cmd
}

// requestToken asks a running glassmesh for a workload token.
func requestToken(ctx context.Context, server, tokenFile string, req ca.TokenRequest) (string, error) {
	body, _ := json.Marshal(req)
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(server, "/")+"/api/ca/tokens", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	r.Header.Set("Content-Type", "application/json")
	if tokenFile != "" {
		op, err := (&runFlags{apiTokenFile: tokenFile}).apiToken()
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		r.Header.Set("Authorization", "Bearer "+op)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "", fmt.Errorf("%s: %s", server, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", server, resp.Status, out.Error)
	}
	return out.Token, nil
}
