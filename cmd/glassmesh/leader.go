package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source/kube"
)

// leaderFlags configure the leader election of --source kubernetes: every
// replica serves xDS, but one only (the holder of a Lease) runs the canary
// controller and writes status.
type leaderFlags struct {
	enabled   bool
	namespace string
	name      string
	identity  string
	lease     time.Duration
	renew     time.Duration
	retry     time.Duration
}

func (f *leaderFlags) register(fs *pflag.FlagSet) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = model.MeshNamespace
	}
	id := os.Getenv("POD_NAME")
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	fs.BoolVar(&f.enabled, "leader-elect", true, "with --source kubernetes: elect one replica (a coordination.k8s.io Lease) to run canaries and write status; the others serve xDS and follow its decisions. false: this replica always leads (run one only)")
	fs.StringVar(&f.namespace, "leader-elect.namespace", ns, "namespace of the leader Lease [$POD_NAMESPACE, else glassmesh-system]")
	fs.StringVar(&f.name, "leader-elect.lease-name", "glassmesh-leader", "name of the leader Lease")
	fs.StringVar(&f.identity, "leader-elect.identity", id, "this replica's name in the Lease and in Events [$POD_NAME, else host-pid]")
	fs.DurationVar(&f.lease, "leader-elect.lease-duration", 15*time.Second, "how long followers wait after the last renewal before taking over from a leader that stopped without handing over")
	fs.DurationVar(&f.renew, "leader-elect.renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it steps down")
	fs.DurationVar(&f.retry, "leader-elect.retry-period", 2*time.Second, "how often the Lease is tried (acquired or renewed)")
}

// elect runs for the whole life of the process. With --source kubernetes
// it campaigns for the Lease again and again; the winner leads (canaries,
// status writes) until it loses the Lease or stops, handing it over on a
// clean stop. With the file source this replica always leads.
func (a *app) elect(ctx context.Context) error {
	f := a.flags.leader
	if a.kube == nil || !f.enabled {
		if a.kube != nil {
			if err := a.lead(true); err != nil {
				return err
			}
		}
		<-ctx.Done()
		return nil
	}
	if f.renew >= f.lease || f.retry >= f.renew {
		return fmt.Errorf("--leader-elect: want retry-period (%s) < renew-deadline (%s) < lease-duration (%s)", f.retry, f.renew, f.lease)
	}
	cs, err := a.newKubeClient() // its own rate limit: status writes never delay a renewal
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: f.namespace, Name: f.name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: f.identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: "glassmesh",
			LeaseDuration: f.lease, RenewDeadline: f.renew, RetryPeriod: f.retry,
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					if err := a.lead(true); err != nil {
						a.logger.Error("taking the lead failed", "error", err)
					}
				},
				OnStoppedLeading: func() { _ = a.lead(false) },
				OnNewLeader: func(id string) {
					a.logger.Info("leader elected", "leader", id, "self", id == f.identity, "lease", f.namespace+"/"+f.name)
				},
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx) // until the lead is lost, or ctx ends (then handed over)
	}
	return nil
}

// lead switches this replica between leading and following.
func (a *app) lead(leading bool) error {
	if a.leading.Load() == leading {
		return nil
	}
	a.leading.Store(leading)
	if a.canaryRequests != nil {
		a.canaryRequests.Forget() // writes queued as leader were dropped
	}
	if err := a.tel.rules.SetLeading(leading); err != nil { // a follower ruler (shared store) evaluates only while leading
		a.logger.Error("switching rule evaluation failed", "leading", leading, "error", err)
	}
	if leading {
		a.leaderGauge.Set(1)
		a.kube.SetLeading(true, a.flags.leader.identity)
		if err := a.canary.Lead(); err != nil {
			return err
		}
		a.logger.Info("leading: running canaries and writing status", "identity", a.flags.leader.identity)
		defer a.serveCanaryActions() // asked while no one led
	} else {
		a.leaderGauge.Set(0)
		a.canary.Follow()
		a.kube.SetLeading(false, a.flags.leader.identity)
		a.logger.Info("following: serving the leader's canary decisions", "identity", a.flags.leader.identity)
	}
	a.reapply()
	return nil
}

func newLeaderGauge(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "glassmesh_leader",
		Help: "1 while this replica holds the leader Lease (runs canaries, writes status); always 1 with the file source.",
	})
	reg.MustRegister(g)
	return g
}

// newKubeClient is a new client of the API server of --source kubernetes,
// with a rate limit of its own.
func (a *app) newKubeClient() (*kubernetes.Clientset, error) {
	rc, err := kube.Config{Kubeconfig: a.flags.kubeconfig}.RestConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}
