package source

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/glassmesh/glassmesh/control/model"
)

// FetchMesh reads the serving mesh config of a running glassmesh from its
// /api/mesh/config, for commands that take --server instead of --config.
func FetchMesh(ctx context.Context, serverURL string) (*model.Mesh, error) {
	url := strings.TrimSuffix(serverURL, "/") + "/api/mesh/config"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var st ConfigStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	r := st.Resources
	return model.NewMesh(model.Objects{
		Services: r.Services, Workloads: r.Workloads, Routes: r.TrafficRoutes,
		SLOs: r.SLOs, Canaries: r.Canaries, Policies: r.SLOPolicies,
		PeerAuths: r.PeerAuthentications, AuthzPols: r.AuthorizationPolicies,
	}), nil
}
