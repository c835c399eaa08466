package source

import "github.com/glassmesh/glassmesh/control/model"

// report writes what a build found about each object back to the API
// server (status conditions and Events); see kubernetes_status.go.
func (k *Kubernetes) report(r model.Result) {}
