package helmtest

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

// allOptions sets every value the chart has.
var allOptions = map[string]any{
	"replicaCount": 3,
	"image":        map[string]any{"repository": "registry.example/glassmesh", "tag": "v9.9.9", "pullPolicy": "Always"},
	"resources": map[string]any{
		"requests": map[string]any{"cpu": "1", "memory": "1Gi"},
		"limits":   map[string]any{"cpu": "4", "memory": "8Gi"},
	},
	"storage":          map[string]any{"type": "persistentVolumeClaim", "size": "50Gi", "storageClass": "fast-ssd"},
	"remoteWrite":      []any{"http://mimir.obs:9009/api/v1/push", "http://thanos.obs:19291/api/v1/receive"},
	"tracesExportOTLP": []any{"http://tempo.obs:4318", "grpc://jaeger.obs:4317"},
	"metricsQueryURL":  "http://mimir.obs:9009/prometheus",
	"tracesQueryURL":   "http://jaeger-query.obs:16686",
	"apiToken":         map[string]any{"existingSecret": "glassmesh-token", "key": "token"},
	"ca":               map[string]any{"existingSecret": "glassmesh-ca"},
	"trustDomain":      "example.org",
	"certTTL":          "12h",
	"logLevel":         "debug",
	"extraArgs":        []any{"--retention.traces=24h"},
	"service":          map[string]any{"type": "LoadBalancer", "annotations": map[string]any{"example.org/lb": "internal"}},
	"webhook":          map[string]any{"enabled": false},
	"podAnnotations":   map[string]any{"example.org/scrape": "true"},
}

// baseArgs are the arguments every rendering has.
var baseArgs = []string{
	"run", "--source=kubernetes", "--data-dir=/var/lib/glassmesh",
	"--http-addr=:20001", "--grpc-addr=:15010",
	"--xds-tls-addr=:15012", "--xds-tls-hosts=glassmesh.glassmesh-system.svc", "--otlp-grpc-addr=:4317",
	"--otlp-http-addr=:4318", "--zipkin-addr=:9411",
}

func TestLint(t *testing.T) {
	for name, values := range map[string]map[string]any{"default": nil, "allOptions": allOptions} {
		t.Run(name, func(t *testing.T) {
			linter := lint.All(ChartDir(), values, Namespace, true)
			for _, m := range linter.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

func TestRenderDefault(t *testing.T) {
	out, err := Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "glassmesh.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rendered default manifests: %s (%d bytes)", path, len(out))
	objs := decodeAll(t, "default", out)

	d := one[*appsv1.Deployment](t, objs)
	if n := len(objectsOf[*appsv1.StatefulSet](objs)); n != 0 {
		t.Errorf("emptyDir storage rendered %d StatefulSets", n)
	}
	if d.Namespace != Namespace || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("Deployment %s/%s replicas %v; want %s, 1", d.Namespace, d.Name, d.Spec.Replicas, Namespace)
	}
	pod := d.Spec.Template
	checkPod(t, pod)
	c := pod.Spec.Containers[0]
	if c.Image != "ghcr.io/glassmesh/glassmesh:latest" {
		t.Errorf("image %q", c.Image)
	}
	want := append(slices.Clone(baseArgs), "--trust-domain=cluster.local", "--cert-ttl=24h", "--log.level=info", "--log.format=json",
		"--webhook-addr=:15017", "--webhook-dns=glassmesh.glassmesh-system.svc", "--webhook-config=glassmesh-sidecar-injector",
		"--inject.image=ghcr.io/glassmesh/glassmesh:latest", "--inject.xds-addr=glassmesh.glassmesh-system.svc:15010",
		"--inject.xds-tls-addr=glassmesh.glassmesh-system.svc:15012", "--inject.server=http://glassmesh.glassmesh-system.svc:20001")
	if !slices.Equal(c.Args, want) {
		t.Errorf("args:\n got %q\nwant %q", c.Args, want)
	}
	if v := volume(pod.Spec, "data"); v == nil || v.EmptyDir == nil {
		t.Errorf("data volume %+v; want an emptyDir", v)
	}

	svc := service(t, objs, "glassmesh")
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service type %s", svc.Spec.Type)
	}
	wantPorts := map[string]int32{"http": 20001, "grpc": 15010, "xds-tls": 15012, "otlp-grpc": 4317, "otlp-http": 4318, "zipkin": 9411, "webhook": 443}
	if got := servicePorts(svc); !reflect.DeepEqual(got, wantPorts) {
		t.Errorf("Service ports %v; want %v", got, wantPorts)
	}
	checkServiceTargets(t, svc, c)

	wh := one[*admissionv1.MutatingWebhookConfiguration](t, objs)
	checkWebhook(t, wh)
	checkRBAC(t, objs, true)
}

func TestRenderAllOptions(t *testing.T) {
	out, err := Render(allOptions)
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeAll(t, "allOptions", out)
	if n := len(objectsOf[*appsv1.Deployment](objs)); n != 0 {
		t.Errorf("persistentVolumeClaim storage rendered %d Deployments; want a StatefulSet", n)
	}
	s := one[*appsv1.StatefulSet](t, objs)
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 3 {
		t.Errorf("replicas %v; want 3", s.Spec.Replicas)
	}
	if s.Spec.ServiceName != "glassmesh-headless" {
		t.Errorf("serviceName %q", s.Spec.ServiceName)
	}
	headless := service(t, objs, "glassmesh-headless")
	if headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("headless Service clusterIP %q", headless.Spec.ClusterIP)
	}
	if len(s.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("volumeClaimTemplates: %d; want 1", len(s.Spec.VolumeClaimTemplates))
	}
	pvc := s.Spec.VolumeClaimTemplates[0]
	if pvc.Name != "data" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast-ssd" ||
		pvc.Spec.Resources.Requests.Storage().String() != "50Gi" ||
		!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("volume claim %s: class %v, size %s, modes %v", pvc.Name, pvc.Spec.StorageClassName, pvc.Spec.Resources.Requests.Storage(), pvc.Spec.AccessModes)
	}
	pod := s.Spec.Template
	checkPod(t, pod)
	if v := volume(pod.Spec, "data"); v != nil {
		t.Errorf("data is a pod volume too (%+v); the claim template provides it", v)
	}
	if pod.Annotations["example.org/scrape"] != "true" {
		t.Errorf("pod annotations %v", pod.Annotations)
	}
	c := pod.Spec.Containers[0]
	if c.Image != "registry.example/glassmesh:v9.9.9" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %q %s", c.Image, c.ImagePullPolicy)
	}
	if c.Resources.Limits.Memory().String() != "8Gi" || c.Resources.Requests.Cpu().String() != "1" {
		t.Errorf("resources %+v", c.Resources)
	}
	want := append(slices.Clone(baseArgs),
		"--trust-domain=example.org", "--cert-ttl=12h", "--log.level=debug", "--log.format=json",
		"--remote-write-url=http://mimir.obs:9009/api/v1/push",
		"--remote-write-url=http://thanos.obs:19291/api/v1/receive", "--remote-write.external-label=replica=$(POD_NAME)",
		"--traces.export-otlp=http://tempo.obs:4318",
		"--traces.export-otlp=grpc://jaeger.obs:4317",
		"--metrics.query-url=http://mimir.obs:9009/prometheus",
		"--traces.query-url=http://jaeger-query.obs:16686",
		"--api-token-file=/etc/glassmesh/token/token",
		"--ca-cert=/etc/glassmesh/ca/tls.crt",
		"--ca-key=/etc/glassmesh/ca/tls.key",
		"--retention.traces=24h",
	)
	if !slices.Equal(c.Args, want) {
		t.Errorf("args:\n got %q\nwant %q", c.Args, want)
	}
	for vol, secret := range map[string]string{"api-token": "glassmesh-token", "ca": "glassmesh-ca"} {
		v := volume(pod.Spec, vol)
		if v == nil || v.Secret == nil || v.Secret.SecretName != secret {
			t.Errorf("volume %s: %+v; want Secret %s", vol, v, secret)
		}
	}
	for mount, dir := range map[string]string{"api-token": "/etc/glassmesh/token", "ca": "/etc/glassmesh/ca"} {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == mount && m.MountPath == dir && m.ReadOnly
		}) {
			t.Errorf("no read-only mount of %s at %s: %+v", mount, dir, c.VolumeMounts)
		}
	}

	svc := service(t, objs, "glassmesh")
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Annotations["example.org/lb"] != "internal" {
		t.Errorf("Service type %s annotations %v", svc.Spec.Type, svc.Annotations)
	}
	if _, ok := servicePorts(svc)["webhook"]; ok {
		t.Error("webhook disabled but the Service has its port")
	}
	if n := len(objectsOf[*admissionv1.MutatingWebhookConfiguration](objs)); n != 0 {
		t.Errorf("webhook disabled but %d MutatingWebhookConfigurations rendered", n)
	}
	checkRBAC(t, objs, false)
}

func TestRenderRejectsUnknownStorage(t *testing.T) {
	_, err := Render(map[string]any{"storage": map[string]any{"type": "hostPath"}})
	if err == nil || !strings.Contains(err.Error(), "storage.type") {
		t.Errorf("storage.type hostPath: err %v; want one naming storage.type", err)
	}
}

// TestCRDsInSync: the chart's crds/ are byte-for-byte copies of deploy/crds
// (which control/model generates): cp deploy/crds/*.glassmesh.io.yaml deploy/helm/glassmesh/crds/
func TestCRDsInSync(t *testing.T) {
	src, err := filepath.Glob(filepath.Join(DeployDir(), "crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, f := range src {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("kind: CustomResourceDefinition")) {
			want["crds/"+filepath.Base(f)] = b
		}
	}
	if len(want) != 8 {
		t.Errorf("deploy/crds has %d CRDs; want the 8 glassmesh kinds", len(want))
	}
	ch, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	got := CRDs(ch)
	for name, b := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("chart lacks %s", name)
		} else if !bytes.Equal(g, b) {
			t.Errorf("chart's %s differs from deploy/%s", name, name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("chart has %s, which deploy/crds does not", name)
		}
	}
}

// TestPlainManifests: deploy/kubernetes decodes, and says what the chart's
// default rendering says.
func TestPlainManifests(t *testing.T) {
	plain := plainObjects(t)
	out, err := Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	chart := decodeAll(t, "default", out)

	ns := one[*corev1.Namespace](t, plain)
	if ns.Name != Namespace {
		t.Errorf("Namespace %s", ns.Name)
	}
	pd, cd := one[*appsv1.Deployment](t, plain), one[*appsv1.Deployment](t, chart)
	checkPod(t, pd.Spec.Template)
	pc, cc := pd.Spec.Template.Spec.Containers[0], cd.Spec.Template.Spec.Containers[0]
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"args", pc.Args, cc.Args},
		{"image", pc.Image, cc.Image},
		{"ports", pc.Ports, cc.Ports},
		{"env", pc.Env, cc.Env},
		{"probes", []any{pc.ReadinessProbe, pc.LivenessProbe}, []any{cc.ReadinessProbe, cc.LivenessProbe}},
		{"resources", pc.Resources, cc.Resources},
		{"container securityContext", pc.SecurityContext, cc.SecurityContext},
		{"pod securityContext", pd.Spec.Template.Spec.SecurityContext, cd.Spec.Template.Spec.SecurityContext},
		{"volumes", pd.Spec.Template.Spec.Volumes, cd.Spec.Template.Spec.Volumes},
		{"volumeMounts", pc.VolumeMounts, cc.VolumeMounts},
		{"Service ports", service(t, plain, "glassmesh").Spec.Ports, service(t, chart, "glassmesh").Spec.Ports},
		{"ClusterRole rules", one[*rbacv1.ClusterRole](t, plain).Rules, one[*rbacv1.ClusterRole](t, chart).Rules},
		{"Role rules", one[*rbacv1.Role](t, plain).Rules, one[*rbacv1.Role](t, chart).Rules},
		{"webhooks", one[*admissionv1.MutatingWebhookConfiguration](t, plain).Webhooks, one[*admissionv1.MutatingWebhookConfiguration](t, chart).Webhooks},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("deploy/kubernetes and the chart differ in the Deployment's %s:\nplain %+v\nchart %+v", f.name, f.got, f.want)
		}
	}
	checkWebhook(t, one[*admissionv1.MutatingWebhookConfiguration](t, plain))
	checkRBAC(t, plain, true)
}

// TestDockerfileExpose: the image exposes exactly the container's ports.
func TestDockerfileExpose(t *testing.T) {
	f, err := os.Open(filepath.Join(DeployDir(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var exposed []int32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.EqualFold(fields[0], "EXPOSE") {
			continue
		}
		for _, p := range fields[1:] {
			n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
			if err != nil {
				t.Fatalf("EXPOSE %s: %v", p, err)
			}
			exposed = append(exposed, int32(n))
		}
	}
	var ports []int32
	for _, p := range one[*appsv1.Deployment](t, plainObjects(t)).Spec.Template.Spec.Containers[0].Ports {
		ports = append(ports, p.ContainerPort)
	}
	slices.Sort(exposed)
	slices.Sort(ports)
	if !slices.Equal(exposed, ports) {
		t.Errorf("Dockerfile EXPOSE %v; container ports %v", exposed, ports)
	}
}

func checkPod(t *testing.T, pod corev1.PodTemplateSpec) {
	t.Helper()
	spec := pod.Spec
	if spec.ServiceAccountName != "glassmesh" {
		t.Errorf("serviceAccountName %q", spec.ServiceAccountName)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v; want runAsNonRoot and a non-zero runAsUser", psc)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v; want a read-only root, no privilege escalation, ALL capabilities dropped", sc)
	}
	for name, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || containerPort(c, p.HTTPGet.Port.String()) != 20001 {
			t.Errorf("probe %s: %+v; want GET %s on 20001", name, p, name)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v; want cpu and memory requests and a memory limit", c.Resources)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "data" && m.MountPath == "/var/lib/glassmesh" && !m.ReadOnly
	}) {
		t.Errorf("no writable data mount at /var/lib/glassmesh: %+v", c.VolumeMounts)
	}
}

func checkServiceTargets(t *testing.T, svc *corev1.Service, c corev1.Container) {
	t.Helper()
	for _, p := range svc.Spec.Ports {
		if containerPort(c, p.TargetPort.String()) == 0 {
			t.Errorf("Service port %s targets %s, which the container does not name", p.Name, p.TargetPort.String())
		}
	}
}

func checkWebhook(t *testing.T, wh *admissionv1.MutatingWebhookConfiguration) {
	t.Helper()
	if wh.Name != "glassmesh-sidecar-injector" || len(wh.Webhooks) != 1 {
		t.Fatalf("MutatingWebhookConfiguration %s with %d webhooks", wh.Name, len(wh.Webhooks))
	}
	w := wh.Webhooks[0]
	svc := w.ClientConfig.Service
	if svc == nil || svc.Name != "glassmesh" || svc.Namespace != Namespace || svc.Path == nil || *svc.Path != "/inject" || svc.Port == nil || *svc.Port != 443 {
		t.Errorf("webhook service %+v; want glassmesh.%s:443/inject", svc, Namespace)
	}
	if len(w.ClientConfig.CABundle) != 0 {
		t.Error("caBundle is set; glassmesh fills it at start")
	}
	if w.FailurePolicy == nil || *w.FailurePolicy != admissionv1.Ignore {
		t.Errorf("failurePolicy %v; want Ignore", w.FailurePolicy)
	}
	if w.NamespaceSelector == nil || w.NamespaceSelector.MatchLabels["glassmesh.io/inject"] != "enabled" {
		t.Errorf("namespaceSelector %+v", w.NamespaceSelector)
	}
	if w.SideEffects == nil || *w.SideEffects != admissionv1.SideEffectClassNone {
		t.Errorf("sideEffects %v", w.SideEffects)
	}
}

// checkRBAC: exactly the grants glassmesh needs, nothing broader.
func checkRBAC(t *testing.T, objs []runtime.Object, webhook bool) {
	t.Helper()
	type grant struct{ group, resource, verb string }
	got := map[grant]bool{}
	cr := one[*rbacv1.ClusterRole](t, objs)
	for _, r := range cr.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" {
						t.Errorf("ClusterRole has a wildcard: %+v", r)
					}
					if res == "secrets" {
						t.Errorf("ClusterRole grants %s on secrets", v)
					}
					got[grant{g, res, v}] = true
				}
			}
		}
		if slices.Contains(r.Resources, "mutatingwebhookconfigurations") && !slices.Equal(r.ResourceNames, []string{"glassmesh-sidecar-injector"}) {
			t.Errorf("mutatingwebhookconfigurations rule not limited to glassmesh-sidecar-injector: %+v", r)
		}
	}
	want := map[grant]bool{}
	read := func(group string, res ...string) {
		for _, r := range res {
			for _, v := range []string{"get", "list", "watch"} {
				want[grant{group, r, v}] = true
			}
		}
	}
	read("", "services", "pods", "namespaces")
	read("discovery.k8s.io", "endpointslices")
	read("apiextensions.k8s.io", "customresourcedefinitions")
	read("gateway.networking.k8s.io", "httproutes") // imported as TrafficRoutes
	read("split.smi-spec.io", "trafficsplits")
	kinds := []string{"services", "workloads", "trafficroutes", "slos", "canaries", "slopolicies", "peerauthentications", "authorizationpolicies"}
	read("glassmesh.io", kinds...)
	for _, k := range kinds {
		want[grant{"glassmesh.io", k + "/status", "update"}] = true
		want[grant{"glassmesh.io", k + "/status", "patch"}] = true
	}
	want[grant{"glassmesh.io", "canaries", "patch"}] = true               // the glassmesh.io/action annotation
	want[grant{"authentication.k8s.io", "tokenreviews", "create"}] = true // --attestation
	want[grant{"gateway.networking.k8s.io", "httproutes/status", "update"}] = true
	want[grant{"gateway.networking.k8s.io", "httproutes/status", "patch"}] = true
	for _, g := range []string{"", "events.k8s.io"} {
		want[grant{g, "events", "create"}] = true
		want[grant{g, "events", "patch"}] = true
	}
	if webhook {
		want[grant{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get"}] = true
		want[grant{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update"}] = true
	}
	if !reflect.DeepEqual(got, want) {
		for g := range got {
			if !want[g] {
				t.Errorf("ClusterRole grants %s on %s/%s, which glassmesh does not need", g.verb, g.group, g.resource)
			}
		}
		for g := range want {
			if !got[g] {
				t.Errorf("ClusterRole lacks %s on %s/%s", g.verb, g.group, g.resource)
			}
		}
	}
	role := one[*rbacv1.Role](t, objs)
	wantRole := []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}}}
	if role.Namespace != Namespace || !reflect.DeepEqual(role.Rules, wantRole) {
		t.Errorf("Role %s/%s rules %+v; want leases get/create/update", role.Namespace, role.Name, role.Rules)
	}
	crb, rb := one[*rbacv1.ClusterRoleBinding](t, objs), one[*rbacv1.RoleBinding](t, objs)
	for _, b := range []struct {
		ref      rbacv1.RoleRef
		subjects []rbacv1.Subject
	}{{crb.RoleRef, crb.Subjects}, {rb.RoleRef, rb.Subjects}} {
		if len(b.subjects) != 1 || b.subjects[0].Kind != "ServiceAccount" || b.subjects[0].Name != "glassmesh" || b.subjects[0].Namespace != Namespace {
			t.Errorf("binding of %s to %+v; want ServiceAccount %s/glassmesh", b.ref.Name, b.subjects, Namespace)
		}
	}
	if crb.RoleRef.Name != cr.Name || rb.RoleRef.Name != role.Name {
		t.Errorf("bindings refer to %s and %s; roles are %s and %s", crb.RoleRef.Name, rb.RoleRef.Name, cr.Name, role.Name)
	}
	sa := one[*corev1.ServiceAccount](t, objs)
	if sa.Name != "glassmesh" || sa.Namespace != Namespace {
		t.Errorf("ServiceAccount %s/%s", sa.Namespace, sa.Name)
	}
}

// decodeAll decodes every document of a YAML stream strictly (an unknown
// or misplaced field is an error) into client-go's typed objects.
func decodeAll(t *testing.T, what string, stream []byte) []runtime.Object {
	t.Helper()
	dec := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{Yaml: true, Strict: true})
	var objs []runtime.Object
	for i, doc := range splitYAML(stream) {
		obj, gvk, err := dec.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s: document %d: %v\n%s", what, i, err, doc)
		}
		if gvk.Kind == "" {
			t.Fatalf("%s: document %d has no kind", what, i)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no objects", what)
	}
	return objs
}

func plainObjects(t *testing.T) []runtime.Object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(DeployDir(), "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/kubernetes: %v, %d files", err, len(files))
	}
	var objs []runtime.Object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeAll(t, filepath.Base(f), b)...)
	}
	return objs
}

func splitYAML(stream []byte) []string {
	var docs []string
	for _, doc := range strings.Split("\n"+string(stream), "\n---") {
		if strings.TrimSpace(stripComments(doc)) != "" {
			docs = append(docs, doc)
		}
	}
	return docs
}

func objectsOf[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func one[T runtime.Object](t *testing.T, objs []runtime.Object) T {
	t.Helper()
	all := objectsOf[T](objs)
	if len(all) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T; want 1", len(all), zero)
	}
	return all[0]
}

func service(t *testing.T, objs []runtime.Object, name string) *corev1.Service {
	t.Helper()
	for _, s := range objectsOf[*corev1.Service](objs) {
		if s.Name == name {
			if s.Namespace != Namespace {
				t.Errorf("Service %s in namespace %q", name, s.Namespace)
			}
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}

func servicePorts(svc *corev1.Service) map[string]int32 {
	out := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		out[p.Name] = p.Port
	}
	return out
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name || strconv.Itoa(int(p.ContainerPort)) == name {
			return p.ContainerPort
		}
	}
	return 0
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

func TestRenderWebhookImages(t *testing.T) {
	out, err := Render(map[string]any{"webhook": map[string]any{"envoyImage": "envoy:x", "proxyInitImage": "init:y"}})
	if err != nil {
		t.Fatal(err)
	}
	args := one[*appsv1.Deployment](t, decodeAll(t, "webhook images", out)).Spec.Template.Spec.Containers[0].Args
	for _, a := range []string{"--inject.envoy-image=envoy:x", "--inject.proxy-init-image=init:y", "--webhook-addr=:15017"} {
		if !slices.Contains(args, a) {
			t.Errorf("args %q lack %s", args, a)
		}
	}
}
