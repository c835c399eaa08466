// Package kube is the Kubernetes config source: informers on core Services,
// Pods and EndpointSlices, the glassmesh custom resources and the route APIs
// glassmesh imports (Gateway API HTTPRoutes, SMI TrafficSplits) build the
// mesh; status writers report, per object, whether it is valid and what
// serves; a leader persists canary state in Canary status. The conversions
// it shares with the file source (core Services, imported routes) live in
// control/source.
package kube

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source"
)

// CustomResources returns the plural resource names of the glassmesh kinds,
// as deploy/crds defines them.
func CustomResources() []string {
	return []string{"services", "workloads", "trafficroutes", "slos", "canaries", "slopolicies", "peerauthentications", "authorizationpolicies"}
}

// Config configures the Kubernetes source.
type Config struct {
	// Kubeconfig is a kubeconfig file; "" means in-cluster config when
	// running in a pod, else the default loading rules ($KUBECONFIG,
	// ~/.kube/config).
	Kubeconfig string
	// Rest, when set, is used instead of Kubeconfig (tests).
	Rest *rest.Config
	// Debounce is how long a change waits for more before the model is
	// rebuilt [100ms]: a rollout changes many pods at once.
	Debounce time.Duration
	// Namespaces, when set, limits the mesh to objects of these namespaces
	// (and glassmesh-system, home of mesh-wide policies); empty means all.
	Namespaces []string
}

// inScope says whether objects of namespace ns belong to the mesh.
func (cfg Config) inScope(ns string) bool {
	if len(cfg.Namespaces) == 0 || ns == model.MeshNamespace {
		return true
	}
	for _, n := range cfg.Namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

// RestConfig resolves the API server connection of cfg.
func (cfg Config) RestConfig() (*rest.Config, error) {
	if cfg.Rest != nil {
		return cfg.Rest, nil
	}
	if cfg.Kubeconfig == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}

// Source builds the mesh from a Kubernetes API server, with informers
// (list once, then watch; nothing polls): core Services, Pods and
// EndpointSlices give services and workloads, and the glassmesh custom
// resources everything else (and services and workloads outside the
// cluster). Custom resource kinds are watched from the moment their CRD is
// established, so installing the CRDs after glassmesh started works.
type Source struct {
	cfg    Config
	logger *slog.Logger

	core    informers.SharedInformerFactory
	dynamic dynamicinformer.DynamicSharedInformerFactory
	crds    cache.SharedIndexInformer

	mu      sync.Mutex
	watched map[string]cache.SharedIndexInformer // custom resource informers by plural
	imports map[string]cache.SharedIndexInformer // informers of imported resources (HTTPRoutes, TrafficSplits) by plural
	denied  map[string]bool                      // imported resources glassmesh may not list and watch
	access  authorizationv1client.SelfSubjectAccessReviewInterface
	kick    chan struct{}
	parsed  map[string]parsedObject // custom resources by plural/namespace/name, as the last build parsed them

	status statusWriter // the leader's status writes (status.go)
}

// New connects to the API server cfg names.
func New(cfg Config, logger *slog.Logger) (*Source, error) {
	rc, err := cfg.RestConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	k := &Source{
		cfg: cfg, logger: logger,
		status:  statusWriter{dyn: dyn, cs: cs, kick: make(chan struct{}, 1)},
		core:    informers.NewSharedInformerFactory(cs, 0),
		dynamic: dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
		watched: map[string]cache.SharedIndexInformer{},
		imports: map[string]cache.SharedIndexInformer{},
		denied:  map[string]bool{},
		access:  cs.AuthorizationV1().SelfSubjectAccessReviews(),
		kick:    make(chan struct{}, 1),
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	k.crds = dynamicinformer.NewFilteredDynamicInformer(dyn, crdGVR, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	return k, nil
}

// changed asks for a rebuild.
func (k *Source) changed() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

func (k *Source) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { k.changed() },
		UpdateFunc: func(any, any) { k.changed() },
		DeleteFunc: func(any) { k.changed() },
	}
}

// slimPod keeps of a pod what the mesh reads, so the cache of 10,000 pods
// stays small.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, OwnerReferences: p.OwnerReferences,
			ResourceVersion: p.ResourceVersion, DeletionTimestamp: p.DeletionTimestamp, UID: p.UID,
		},
		Spec:   corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP},
	}, nil
}

// PodWorkload names the mesh workload pod namespace/name belongs to, or
// false when the pod is not (or not yet) in the cache: what a token bound
// to that pod may act as.
func (k *Source) PodWorkload(namespace, name string) (string, bool) {
	obj, ok, err := k.core.Core().V1().Pods().Informer().GetStore().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return "", false
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return "", false
	}
	return podWorkload(p), true
}

// Run watches the API server and calls out with a new model whenever what
// it reads changes, the first time once every informer has synced. It
// returns when ctx ends.
func (k *Source) Run(ctx context.Context, out source.Sink) error {
	svc := k.core.Core().V1().Services().Informer()
	pods := k.core.Core().V1().Pods().Informer()
	if err := pods.SetTransform(slimPod); err != nil {
		return err
	}
	slices := k.core.Discovery().V1().EndpointSlices().Informer()
	for _, inf := range []cache.SharedIndexInformer{svc, pods, slices} {
		if _, err := inf.AddEventHandler(k.handler()); err != nil {
			return err
		}
	}
	if _, err := k.crds.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.watchCRD(ctx, obj) },
		UpdateFunc: func(_, obj any) { k.watchCRD(ctx, obj) },
	}); err != nil {
		return err
	}
	k.core.Start(ctx.Done())
	go k.crds.Run(ctx.Done())
	k.logger.Info("kubernetes source: syncing")
	if !cache.WaitForCacheSync(ctx.Done(), svc.HasSynced, pods.HasSynced, slices.HasSynced, k.crds.HasSynced) {
		return ctx.Err()
	}
	// CRDs established at start-up are known now; wait for their
	// informers too, so the first model is complete.
	k.mu.Lock()
	var synced []cache.InformerSynced
	for _, inf := range k.watched {
		synced = append(synced, inf.HasSynced)
	}
	crs := len(synced)
	for _, inf := range k.imports {
		synced = append(synced, inf.HasSynced)
	}
	k.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	if crs == 0 {
		k.logger.Warn("kubernetes source: no glassmesh CRDs are installed; only Services and Pods are read (kubectl apply -f deploy/crds/)")
	}
	last := ""
	last = k.emit(out, last)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-k.kick:
		}
		// Let a burst (a rollout, kubectl apply -f dir) settle.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(k.cfg.Debounce):
		}
		select {
		case <-k.kick:
		default:
		}
		last = k.emit(out, last)
	}
}

// watchCRD starts the informer of a glassmesh CRD once it is established,
// and of an imported resource's (HTTPRoute, TrafficSplit) at the version
// its CRD stores, or else the first it serves. Imported CRDs may well be
// absent: that is normal.
func (k *Source) watchCRD(ctx context.Context, obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
	version, informers, imported := "", k.watched, false
	switch {
	case !established(u):
		return
	case group == model.CRDGroup && knownResource(plural):
		version = model.CRDVersion
	case group != "" && source.ImportedGroup(plural) == group:
		version, informers, imported = servedVersion(u), k.imports, true
	}
	if version == "" {
		return
	}
	k.mu.Lock()
	_, watching := informers[plural]
	k.mu.Unlock()
	if watching {
		return
	}
	// An informer that may not list never syncs, and the first model
	// waits for it: imports are optional, so check first.
	mayWatch := !imported || k.mayWatch(ctx, group, plural)
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := informers[plural]; ok || !mayWatch {
		return
	}
	inf := k.dynamic.ForResource(schema.GroupVersionResource{Group: group, Version: version, Resource: plural}).Informer()
	if _, err := inf.AddEventHandler(k.handler()); err != nil {
		k.logger.Error("kubernetes source: watching a custom resource", "resource", plural, "error", err)
		return
	}
	informers[plural] = inf
	k.dynamic.Start(ctx.Done())
	k.logger.Info("kubernetes source: watching custom resources", "resource", plural+"."+group, "version", version)
	k.changed()
}

// mayWatch asks the API server whether glassmesh may list and watch a
// resource in every namespace; when not, it says once what RBAC rule is
// missing.
func (k *Source) mayWatch(ctx context.Context, group, plural string) bool {
	for _, verb := range []string{"list", "watch"} {
		r, err := k.access.Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: plural},
		}}, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			continue
		}
		k.mu.Lock()
		first := !k.denied[plural]
		k.denied[plural] = true
		k.mu.Unlock()
		if first {
			reason := "denied"
			if err != nil {
				reason = err.Error()
			}
			k.logger.Warn("kubernetes source: not importing "+plural+"."+group+": glassmesh may not list and watch them (add get, list, watch on them to its ClusterRole)",
				"verb", verb, "reason", reason)
		}
		return false
	}
	return true
}

// servedVersion is the version of a CRD to read: its storage version when
// served, else the first served one ("" when none is).
func servedVersion(u *unstructured.Unstructured) string {
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	first := ""
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if served, _ := m["served"].(bool); !served {
			continue
		}
		name, _ := m["name"].(string)
		if storage, _ := m["storage"].(bool); storage {
			return name
		}
		if first == "" {
			first = name
		}
	}
	return first
}

func knownResource(plural string) bool {
	for _, r := range CustomResources() {
		if r == plural {
			return true
		}
	}
	return false
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// emit builds the model from the caches and sends it, unless nothing it
// reads changed since last (the digest of every object's resource version).
func (k *Source) emit(out source.Sink, last string) string {
	r := k.build()
	if r.Digest == last {
		return last
	}
	k.report(r, out(r))
	return r.Digest
}

// build reads every cache into one Result.
func (k *Source) build() model.Result {
	// The digest tells a rebuild that changed nothing apart: every
	// object's kind, key and resourceVersion, hashed one by one and
	// combined in no order (no strings built, nothing sorted: a rebuild
	// reads thousands of pods).
	var digest objectDigest
	note := func(kind string, o metav1.Object) { digest.add(kind, o) }
	var objs model.Objects
	var diags []model.Diagnostic
	files := 0

	selectors := map[string]map[string]string{}
	for _, obj := range k.core.Core().V1().Services().Informer().GetStore().List() {
		s := obj.(*corev1.Service)
		if !k.cfg.inScope(s.Namespace) {
			continue
		}
		note("services", s)
		selectors[s.Namespace+"/"+s.Name] = s.Spec.Selector
		if ms := source.ServiceFromKubernetes(s); ms != nil {
			objs.Services = append(objs.Services, ms)
			files++
		}
	}
	var pods []*corev1.Pod
	for _, obj := range k.core.Core().V1().Pods().Informer().GetStore().List() {
		p := obj.(*corev1.Pod)
		if !k.cfg.inScope(p.Namespace) {
			continue
		}
		note("pods", p)
		pods = append(pods, p)
	}
	var slices []*discoveryv1.EndpointSlice
	for _, obj := range k.core.Discovery().V1().EndpointSlices().Informer().GetStore().List() {
		s := obj.(*discoveryv1.EndpointSlice)
		if !k.cfg.inScope(s.Namespace) {
			continue
		}
		note("endpointslices", s)
		slices = append(slices, s)
	}
	workloads := workloadsFromKubernetes(pods, slices)
	objs.Workloads = append(objs.Workloads, workloads...)
	files += len(workloads)

	k.mu.Lock()
	parsed := make(map[string]parsedObject, len(k.parsed))
	k.eachObject(k.watched, func(plural string, u *unstructured.Unstructured) {
		note(plural, u)
		// An object parses as it did while its resource version holds:
		// an event costs the object it touches.
		key := plural + "/" + u.GetNamespace() + "/" + u.GetName()
		p, ok := k.parsed[key]
		if !ok || p.version != u.GetResourceVersion() {
			p.version = u.GetResourceVersion()
			p.objs, p.diags = parseCustomResource(plural, u)
		}
		parsed[key] = p
		objs.Append(p.objs)
		diags = append(diags, p.diags...)
		files++
	})
	k.parsed = parsed
	imports := k.importRoutes(selectors, note)
	k.mu.Unlock()
	diags = append(diags, imports.Errors...)
	warns := append(imports.Warnings, imports.MergeInto(&objs)...)
	files += imports.Len()

	res := model.Result{Files: files, Errors: diags, Digest: digest.String()}
	mesh, verrs, vwarns := model.Validate(objs)
	res.Objects, res.ReadErrors = objs, append([]model.Diagnostic(nil), diags...)
	res.Errors = append(res.Errors, verrs...)
	res.Warnings = append(warns, vwarns...)
	for _, ds := range [][]model.Diagnostic{res.Errors, res.Warnings} {
		for i := range ds {
			if strings.HasPrefix(ds[i].File, source.OriginPrefix) {
				ds[i].Line = 0 // lines of the YAML made from an object mean nothing
			}
		}
	}
	if len(res.Errors) == 0 {
		res.Mesh = mesh
	}
	return res
}

// objectDigest combines the versions of a set of objects, in any order.
type objectDigest struct {
	sum, xor uint64
	n        int
}

func (d *objectDigest) add(kind string, o metav1.Object) {
	h := fnv.New64a()
	for _, s := range []string{kind, o.GetNamespace(), o.GetName(), o.GetResourceVersion()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	x := h.Sum64()
	d.sum += x
	d.xor ^= x * 0x9e3779b97f4a7c15
	d.n++
}

func (d objectDigest) String() string { return fmt.Sprintf("%016x%016x-%d", d.sum, d.xor, d.n) }

// parsedObject is what one custom resource parsed to, at a version.
type parsedObject struct {
	version string
	objs    model.Objects
	diags   []model.Diagnostic
}

// importRoutes converts the HTTPRoutes and TrafficSplits in the caches into
// TrafficRoutes. selectors holds the core Services' selectors by
// namespace/name. k.mu is held.
func (k *Source) importRoutes(selectors map[string]map[string]string, note func(string, metav1.Object)) *source.RouteImports {
	ri := &source.RouteImports{Selectors: selectors}
	k.eachObject(k.imports, func(plural string, u *unstructured.Unstructured) {
		note(plural, u)
		ri.Add(plural, u)
	})
	return ri
}

// eachObject calls f with every object of the mesh's namespaces that the
// informers hold, by plural in order, then as the caches list them. k.mu
// is held.
func (k *Source) eachObject(informers map[string]cache.SharedIndexInformer, f func(plural string, u *unstructured.Unstructured)) {
	plurals := make([]string, 0, len(informers))
	for p := range informers {
		plurals = append(plurals, p)
	}
	sort.Strings(plurals)
	for _, plural := range plurals {
		for _, obj := range informers[plural].GetStore().List() {
			if u := obj.(*unstructured.Unstructured); k.cfg.inScope(u.GetNamespace()) {
				f(plural, u)
			}
		}
	}
}
