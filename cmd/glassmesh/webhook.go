package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glassmesh/glassmesh/control/ca"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

// webhookFlags configure the sidecar injection webhook.
type webhookFlags struct {
	addr    string
	dns     []string
	config  string
	inject  sidecarconfig.InjectConfig
	enabled bool
}

func (f *webhookFlags) register(fs *pflag.FlagSet) {
	f.inject = sidecarconfig.DefaultInjectConfig()
	fs.StringVar(&f.addr, "webhook-addr", "", "serve the sidecar injection webhook (HTTPS, "+sidecarconfig.WebhookPath+") here, with a certificate from the mesh CA; empty: off")
	fs.StringSliceVar(&f.dns, "webhook-dns", []string{"glassmesh.glassmesh-system.svc"}, "host names (or addresses) of the webhook's certificate: how the API server reaches it")
	fs.StringVar(&f.config, "webhook-config", "glassmesh-sidecar-injector", "with --source kubernetes: the MutatingWebhookConfiguration whose caBundle glassmesh sets to the mesh root")
	fs.StringVar(&f.inject.Image, "inject.image", f.inject.Image, "glassmesh's image, for injected bootstrap and certificate containers")
	fs.StringVar(&f.inject.EnvoyImage, "inject.envoy-image", f.inject.EnvoyImage, "the injected proxy's image")
	fs.StringVar(&f.inject.ProxyInitImage, "inject.proxy-init-image", f.inject.ProxyInitImage, "image with iptables for the injected traffic capture")
	fs.StringVar(&f.inject.XDSAddr, "inject.xds-addr", f.inject.XDSAddr, "glassmesh's gRPC address as injected pods reach it")
	fs.StringVar(&f.inject.XDSTLSAddr, "inject.xds-tls-addr", "", "glassmesh's attested xDS listener (--xds-tls-addr) as injected pods reach it: proxyless pods then take xDS there over TLS with their projected token; empty: --inject.xds-addr")
	fs.StringVar(&f.inject.ServerURL, "inject.server", f.inject.ServerURL, "glassmesh's HTTP API as injected pods reach it")
}

// newWebhook listens for the injection webhook, when --webhook-addr is set.
func (a *app) newWebhook() error {
	f := &a.flags.webhook
	if f.addr == "" {
		return nil
	}
	wc, err := ca.NewServingCert(a.ca, f.dns)
	if err != nil {
		return fmt.Errorf("--webhook-dns: %w", err)
	}
	lis, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("--webhook-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+sidecarconfig.WebhookPath, sidecarconfig.WebhookHandler(f.inject, a.logger.With("component", "inject")))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: wc.GetCertificate}}
	a.logger.Info("sidecar injection webhook listening", "addr", lis.Addr().String(), "path", sidecarconfig.WebhookPath)
	a.actors = append(a.actors, actor{
		execute: func() error {
			if err := srv.ServeTLS(lis, "", ""); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
		interrupt: func(error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		},
	})
	f.enabled = true
	return nil
}

// publishCABundle sets the mesh root as the caBundle of every webhook of
// the injection MutatingWebhookConfiguration, so the API server trusts the
// webhook's certificate. It retries until ctx ends: the configuration may
// be applied after glassmesh starts.
func (a *app) publishCABundle(ctx context.Context) error {
	f := a.flags.webhook
	if !f.enabled || a.flags.source != "kubernetes" || f.config == "" {
		<-ctx.Done() // a run group member ends only with the group
		return nil
	}
	cs, err := a.newKubeClient()
	if err != nil {
		return err
	}
	root := a.ca.RootPEM()
	for {
		err := func() error {
			mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, f.config, metav1.GetOptions{})
			if err != nil {
				return err
			}
			changed := false
			for i := range mwc.Webhooks {
				if string(mwc.Webhooks[i].ClientConfig.CABundle) != string(root) {
					mwc.Webhooks[i].ClientConfig.CABundle, changed = root, true
				}
			}
			if changed {
				if _, err = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
					return err
				}
				a.logger.Info("set the injection webhook's CA bundle", "config", f.config)
			}
			return nil
		}()
		if err != nil && ctx.Err() == nil {
			a.logger.Warn("cannot set the injection webhook's CA bundle yet; retrying", "config", f.config, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(map[bool]time.Duration{true: 10 * time.Minute, false: 5 * time.Second}[err == nil]):
		}
	}
}
