package metrics

import (
	"fmt"
	"net/url"
	"os"

	"github.com/prometheus/prometheus/config"
)

// ValidateExternalURL accepts "" (the default) or an absolute http(s) URL;
// key names the setting in the error.
func ValidateExternalURL(key, s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%s: %q must be an absolute http(s) URL", key, s)
	}
	return nil
}

// ExternalURL is how users reach glassmesh, for alert generator links and
// the API's OpenAPI spec: s, or http://<hostname>:20001/ when s is empty.
func ExternalURL(s string) (*url.URL, error) {
	if s == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "localhost"
		}
		s = "http://" + host + ":20001/"
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("api.external-url: %w", err)
	}
	return u, nil
}

// PrometheusConfig is the Prometheus configuration the API reports under
// /api/v1/status/config and remote-write applies: Prometheus's defaults,
// plus the remote-write targets when given.
func PrometheusConfig(rw []*config.RemoteWriteConfig) config.Config {
	c := config.DefaultConfig
	c.GlobalConfig = config.DefaultGlobalConfig
	c.OTLPConfig = config.DefaultOTLPConfig
	c.RemoteWriteConfigs = rw
	return c
}
