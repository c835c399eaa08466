package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
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
	lock := &renewals{Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: f.namespace, Name: f.name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: f.identity},
	}, valid: leaseValidFor(f.retry, f.renew)}
	a.renewals.Store(lock)
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

// leaseValid says whether this replica's lead is current: the canary
// controller decides only while it is (canary.Config.LeaseValid). Without
// an election (file source, --leader-elect=false) it always is.
func (a *app) leaseValid() bool {
	r := a.renewals.Load()
	return r == nil || r.current()
}

// renewals is the leader Lease's lock, noting when this replica last wrote
// itself into the Lease (an acquisition or a renewal).
//
// client-go tells a leader it lost the Lease only when its renewals failed
// for the whole renew deadline, and with ReleaseOnCancel only after it
// then tried to release the Lease for another renew deadline: a leader cut
// off from the API server goes on leading for up to twice the renew
// deadline, past the lease duration after which another replica takes
// over. So the canary controller does not wait for that: it decides only
// while the last renewal is recent (current).
type renewals struct {
	resourcelock.Interface
	valid time.Duration
	last  atomic.Int64 // UnixNano of the start of the last successful write as holder
}

// leaseValidFor is how long after the start of its last renewal a leader
// still decides: a retry period (when the next renewal starts) and half
// the renew deadline (for it to answer), never beyond the renew deadline,
// which is shorter than the lease duration followers wait for. Renewals
// succeed every retry period while the API server answers, so the
// controller pauses within this time of the API server going out of
// reach, well before client-go gives the lead up.
func leaseValidFor(retry, renew time.Duration) time.Duration {
	return min(retry+renew/2, renew)
}

// Create implements resourcelock.Interface.
func (r *renewals) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := time.Now()
	err := r.Interface.Create(ctx, ler)
	r.note(start, ler, err)
	return err
}

// Update implements resourcelock.Interface.
func (r *renewals) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := time.Now()
	err := r.Interface.Update(ctx, ler)
	r.note(start, ler, err)
	return err
}

// note records a successful write that names this replica the holder (a
// release names no one).
func (r *renewals) note(start time.Time, ler resourcelock.LeaderElectionRecord, err error) {
	if err == nil && ler.HolderIdentity == r.Identity() {
		r.last.Store(start.UnixNano())
	}
}

// current says whether the last renewal started less than valid ago.
func (r *renewals) current() bool {
	last := r.last.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < r.valid
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
