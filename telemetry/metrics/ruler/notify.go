package ruler

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
)

// alertmanagers turns --alertmanager-url values into Prometheus alerting
// configs, one per URL, and the target groups a static service discovery
// would produce for them. The notifier keys its Alertmanager sets by
// "config-<index>" (config.AlertmanagerConfigs.ToMap); the target groups
// use the same keys so the notifier can be fed without a discovery manager.
func alertmanagers(urls []string, timeout time.Duration) (config.AlertmanagerConfigs, map[string][]*targetgroup.Group, error) {
	cfgs := make(config.AlertmanagerConfigs, 0, len(urls))
	tgs := make(map[string][]*targetgroup.Group, len(urls))
	for i, raw := range urls {
		c, err := alertmanagerConfig(raw, timeout)
		if err != nil {
			return nil, nil, fmt.Errorf("alertmanager-url[%d]: %w", i, err)
		}
		cfgs = append(cfgs, c)
		tgs[fmt.Sprintf("config-%d", i)] = c.ServiceDiscoveryConfigs[0].(discovery.StaticConfig)
	}
	return cfgs, tgs, nil
}

// alertmanagerConfig is the alerting config for one Alertmanager URL such
// as http://user:pass@am:9093/prefix: API v2 under the URL's path, basic
// auth from its user info.
func alertmanagerConfig(raw string, timeout time.Duration) (*config.AlertmanagerConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: missing host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: query and fragment are not supported", raw)
	}
	c := config.DefaultAlertmanagerConfig
	c.Scheme = u.Scheme
	c.PathPrefix = strings.TrimSuffix(u.Path, "/")
	c.Timeout = model.Duration(timeout)
	if u.User != nil {
		pw, _ := u.User.Password()
		c.HTTPClientConfig.BasicAuth = &config_util.BasicAuth{
			Username: u.User.Username(),
			Password: config_util.Secret(pw),
		}
	}
	if err := c.HTTPClientConfig.Validate(); err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	c.ServiceDiscoveryConfigs = discovery.Configs{discovery.StaticConfig{{
		Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
		Source:  u.Redacted(),
	}}}
	return &c, nil
}
