package k8s

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
)

// injectPods are the pods TestWebhookInjects creates and injects offline.
const injectPods = "testdata/inject-pods.yaml"

// injectConfig is what both the webhook (`run --inject.X`) and `sidecar
// inject` (`--X`) are told to inject; none is a default, so the test sees
// the flags reach the injected pods.
var injectConfig = [][3]string{ // run flag, inject flag, value
	{"--inject.image", "--image", "registry.example/glassmesh:e2e"},
	{"--inject.envoy-image", "--envoy-image", "registry.example/envoy:e2e"},
	{"--inject.proxy-init-image", "--proxy-init-image", "registry.example/proxyinit:e2e"},
	{"--inject.xds-addr", "--xds-addr", "glassmesh.e2e.svc:15010"},
	{"--inject.server", "--server", "http://glassmesh.e2e.svc:20001"},
}

// TestWebhookInjects: the API server calls glassmesh's injection webhook
// over TLS, trusting the CA bundle glassmesh published itself, and the pods
// it stores carry the sidecar; `glassmesh sidecar inject` makes the same
// pods offline; namespaces without the label and opted-out pods are left
// alone.
func TestWebhookInjects(t *testing.T) {
	cs := kubernetes.NewForConfigOrDie(server.Config)
	ctx := context.Background()
	ip := hostIP(t)

	injected := newNamespace(t, cs)
	plain := newNamespace(t, cs)
	labelNamespace(t, cs, injected, map[string]string{"glassmesh.io/inject": "enabled"})

	port := freePort(t, ip)
	whName := "glassmesh-e2e-" + injected
	if len(whName) > 63 {
		whName = strings.TrimRight(whName[:63], "-")
	}
	// Only this test's namespace, and only once it is labelled as users
	// label theirs; Fail, so a webhook that cannot be called shows.
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: whName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "inject.glassmesh.io",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			TimeoutSeconds:          ptr.To[int32](10),
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				URL: ptr.To("https://" + net.JoinHostPort(ip, strconv.Itoa(port)) + "/inject"),
			},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"kubernetes.io/metadata.name": injected,
				"glassmesh.io/inject":         "enabled",
			}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
					Resources: []string{"pods"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}},
		}},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), whName, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete MutatingWebhookConfiguration %s: %v", whName, err)
		}
	})

	args := []string{"--kubernetes.namespaces", injected,
		"--webhook-addr", net.JoinHostPort(ip, strconv.Itoa(port)), "--webhook-dns", ip, "--webhook-config", whName}
	for _, f := range injectConfig {
		args = append(args, f[0], f[2])
	}
	runGlassmesh(t, args...) // returns once glassmesh logs that it is starting
	started := time.Now()

	// glassmesh publishes its CA's root as the caBundle.
	var bundle []byte
	within(t, 30*time.Second, "glassmesh sets the webhook's caBundle", func() error {
		got, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, whName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if bundle = got.Webhooks[0].ClientConfig.CABundle; len(bundle) == 0 {
			return fmt.Errorf("no caBundle yet")
		}
		return nil
	})
	t.Logf("caBundle published %s after glassmesh said it was starting", time.Since(started).Round(10*time.Millisecond))
	roots := x509.NewCertPool()
	block, _ := pem.Decode(bundle)
	if block == nil {
		t.Fatalf("caBundle is not PEM: %q", bundle)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !root.IsCA {
		t.Fatalf("caBundle: %v, CA %v", err, root != nil && root.IsCA)
	}
	roots.AddCert(root)

	t.Run("the webhook's certificate verifies against the caBundle for the host's address", func(t *testing.T) {
		conn, err := tls.Dial("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), &tls.Config{RootCAs: roots, ServerName: ip})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		leaf := conn.ConnectionState().PeerCertificates[0]
		if !slices.ContainsFunc(leaf.IPAddresses, func(a net.IP) bool { return a.String() == ip }) {
			t.Errorf("serving certificate IP SANs %v; want %s", leaf.IPAddresses, ip)
		}
	})

	pods := readPods(t, injectPods)
	stored := map[string]*corev1.Pod{}
	// The API server's webhook client reloads its configuration (the new
	// caBundle) from an informer: until then a create fails the TLS check.
	first := time.Now()
	within(t, 30*time.Second, "the API server admits the first pod through the webhook", func() error {
		p, err := cs.CoreV1().Pods(injected).Create(ctx, pods[0].DeepCopy(), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		stored[p.Name] = p
		return nil
	})
	t.Logf("first pod admitted %s after the caBundle was set", time.Since(first).Round(10*time.Millisecond))
	for _, p := range pods[1:] {
		got, err := cs.CoreV1().Pods(injected).Create(ctx, p.DeepCopy(), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
		stored[got.Name] = got
	}

	t.Run("an Envoy pod gets traffic capture, the bootstrap and the proxy", func(t *testing.T) {
		p := stored["reviews-v1-5d8f9-abcde"]
		if got := p.Annotations["glassmesh.io/status"]; got != "envoy" {
			t.Errorf("status annotation %q; want envoy", got)
		}
		if got, want := containerNames(p.Spec.InitContainers), []string{"glassmesh-init", "glassmesh-bootstrap"}; !slices.Equal(got, want) {
			t.Errorf("init containers %v; want %v", got, want)
		}
		if got, want := containerNames(p.Spec.Containers), []string{"app", "glassmesh-proxy"}; !slices.Equal(got, want) {
			t.Fatalf("containers %v; want %v", got, want)
		}
		if got, want := volumeNames(p.Spec.Volumes), []string{"scratch", "glassmesh-config", "glassmesh-certs"}; !slices.Equal(got, want) {
			t.Errorf("volumes %v; want %v", got, want)
		}
		checkImage(t, p.Spec.InitContainers[0], "registry.example/proxyinit:e2e")
		checkImage(t, p.Spec.InitContainers[1], "registry.example/glassmesh:e2e")
		checkImage(t, p.Spec.Containers[1], "registry.example/envoy:e2e")
		boot := strings.Join(p.Spec.InitContainers[1].Args, " ")
		for _, want := range []string{"sidecar bootstrap", "--workload $(POD_NAMESPACE)/reviews-v1", "--xds-addr glassmesh.e2e.svc:15010",
			"--out /etc/glassmesh/bootstrap.json", "--label app=reviews", "--label version=v1"} {
			if !strings.Contains(boot+" ", want+" ") {
				t.Errorf("bootstrap args %q lack %q", boot, want)
			}
		}
		if strings.Contains(boot, "pod-template-hash") || strings.Contains(boot, "--proxyless") {
			t.Errorf("bootstrap args %q", boot)
		}
		if app := p.Spec.Containers[0]; len(app.Env) != 1 || len(app.VolumeMounts) != 1 {
			t.Errorf("the app container was changed: env %v, mounts %v", app.Env, app.VolumeMounts)
		}
	})
	t.Run("a proxyless pod gets the bootstrap, a certificate sidecar and GRPC_XDS_BOOTSTRAP", func(t *testing.T) {
		p := stored["ratings-0"]
		if got := p.Annotations["glassmesh.io/status"]; got != "proxyless" {
			t.Errorf("status annotation %q; want proxyless", got)
		}
		if got, want := containerNames(p.Spec.InitContainers), []string{"glassmesh-bootstrap", "glassmesh-certs"}; !slices.Equal(got, want) {
			t.Fatalf("init containers %v; want %v", got, want)
		}
		if got, want := containerNames(p.Spec.Containers), []string{"app", "helper"}; !slices.Equal(got, want) {
			t.Errorf("containers %v; want %v", got, want)
		}
		certs := p.Spec.InitContainers[1]
		if certs.RestartPolicy == nil || *certs.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("certificate container restartPolicy %v; want Always (a native sidecar)", certs.RestartPolicy)
		}
		args := strings.Join(certs.Args, " ")
		for _, want := range []string{"sidecar certs", "--workload $(POD_NAMESPACE)/ratings-0", "--server http://glassmesh.e2e.svc:20001", "--watch",
			"--token-file /var/run/glassmesh/token/token"} {
			if !strings.Contains(args, want) {
				t.Errorf("certificate container args %q lack %q", args, want)
			}
		}
		// The certificate sidecar, and only it, holds a projected token
		// for glassmesh's audience: its credential for the CA.
		i := slices.IndexFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "glassmesh-token" })
		if i < 0 || p.Spec.Volumes[i].Projected == nil || len(p.Spec.Volumes[i].Projected.Sources) != 1 ||
			p.Spec.Volumes[i].Projected.Sources[0].ServiceAccountToken == nil ||
			p.Spec.Volumes[i].Projected.Sources[0].ServiceAccountToken.Audience != "glassmesh" {
			t.Errorf("no projected service-account token for audience glassmesh in %v", volumeNames(p.Spec.Volumes))
		}
		if got := mountNames(certs.VolumeMounts); !slices.Equal(got, []string{"glassmesh-certs", "glassmesh-token"}) {
			t.Errorf("certificate container mounts %v", got)
		}
		if boot := strings.Join(p.Spec.InitContainers[0].Args, " "); !strings.Contains(boot, "--proxyless") {
			t.Errorf("bootstrap args %q lack --proxyless", boot)
		}
		for _, c := range p.Spec.Containers {
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
				return e.Name == "GRPC_XDS_BOOTSTRAP" && e.Value == "/etc/glassmesh/bootstrap.json"
			}) {
				t.Errorf("container %s env %v lacks GRPC_XDS_BOOTSTRAP", c.Name, c.Env)
			}
			if got := mountNames(c.VolumeMounts); !slices.Equal(got, []string{"glassmesh-config", "glassmesh-certs"}) {
				t.Errorf("container %s mounts %v", c.Name, got)
			}
		}
	})
	t.Run("a pod annotated glassmesh.io/inject=false is left alone", func(t *testing.T) {
		p := stored["legacy-0"]
		if len(p.Spec.InitContainers) != 0 || len(p.Spec.Containers) != 1 || p.Annotations["glassmesh.io/status"] != "" {
			t.Errorf("opted-out pod: init %v, containers %v, annotations %v", containerNames(p.Spec.InitContainers), containerNames(p.Spec.Containers), p.Annotations)
		}
	})

	t.Run("sidecar inject -f makes the pods the API server stored", func(t *testing.T) {
		cmdArgs := []string{"sidecar", "inject", "-f", injectPods}
		for _, f := range injectConfig {
			cmdArgs = append(cmdArgs, f[1], f[2])
		}
		cmd := exec.Command(glassmeshBinary(t), cmdArgs...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("glassmesh %s: %v\n%s", strings.Join(cmdArgs, " "), err, stderr.Bytes())
		}
		path := t.TempDir() + "/injected.yaml"
		_ = os.WriteFile(path, out, 0o644)
		offline := decodePods(t, out)
		if len(offline) != len(pods) {
			t.Fatalf("sidecar inject printed %d pods; want %d (%s)", len(offline), len(pods), path)
		}
		for _, p := range offline {
			want := stored[p.Name]
			if want == nil {
				t.Errorf("sidecar inject printed pod %q; not in %s", p.Name, injectPods)
				continue
			}
			// The API server defaults what neither injector sets (pull
			// policies, termination message paths, protocols, ...): let it
			// default the offline pod too, without storing it, in a
			// namespace the webhook does not see.
			dry := p.DeepCopy()
			dry.Namespace = plain
			got, err := cs.CoreV1().Pods(plain).Create(ctx, dry, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Fatalf("dry-run create of the offline pod %s: %v", p.Name, err)
			}
			if !apiequality.Semantic.DeepEqual(got.Spec, want.Spec) {
				t.Errorf("pod %s: the offline spec differs from the admitted one:\n%s", p.Name, jsonDiff(got.Spec, want.Spec))
			}
			if g, w := got.Annotations["glassmesh.io/status"], want.Annotations["glassmesh.io/status"]; g != w {
				t.Errorf("pod %s: offline status annotation %q, admitted %q", p.Name, g, w)
			}
			if !apiequality.Semantic.DeepEqual(got.Annotations, want.Annotations) || !apiequality.Semantic.DeepEqual(got.Labels, want.Labels) {
				t.Errorf("pod %s: offline annotations %v labels %v; admitted %v %v", p.Name, got.Annotations, got.Labels, want.Annotations, want.Labels)
			}
		}
	})

	t.Run("a namespace without the label gets no injection", func(t *testing.T) {
		for _, p := range pods {
			got, err := cs.CoreV1().Pods(plain).Create(ctx, p.DeepCopy(), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(containerNames(got.Spec.Containers), containerNames(p.Spec.Containers)) ||
				len(got.Spec.InitContainers) != 0 || got.Annotations["glassmesh.io/status"] != "" {
				t.Errorf("pod %s in %s: init %v, containers %v, annotations %v", p.Name, plain,
					containerNames(got.Spec.InitContainers), containerNames(got.Spec.Containers), got.Annotations)
			}
		}
	})
}

// labelNamespace adds labels to namespace ns.
func labelNamespace(t *testing.T, cs kubernetes.Interface, ns string, labels map[string]string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if _, err := cs.CoreV1().Namespaces().Patch(context.Background(), ns, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("label namespace %s: %v", ns, err)
	}
}

// freePort is a TCP port free on ip a moment ago.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

func readPods(t *testing.T, path string) []*corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodePods(t, b)
}

// decodePods decodes the Pods of a multi-document YAML stream.
func decodePods(t *testing.T, b []byte) []*corev1.Pod {
	t.Helper()
	var pods []*corev1.Pod
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(stripYAMLComments(doc))) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decode %q: %v", doc, err)
		}
		p, ok := obj.(*corev1.Pod)
		if !ok {
			t.Fatalf("not a Pod: %T", obj)
		}
		pods = append(pods, p)
	}
	return pods
}

func stripYAMLComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func containerNames(cs []corev1.Container) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

func volumeNames(vs []corev1.Volume) []string {
	var n []string
	for _, v := range vs {
		n = append(n, v.Name)
	}
	return n
}

func mountNames(ms []corev1.VolumeMount) []string {
	var n []string
	for _, m := range ms {
		if strings.HasPrefix(m.Name, "glassmesh-") {
			n = append(n, m.Name)
		}
	}
	return n
}

func checkImage(t *testing.T, c corev1.Container, want string) {
	t.Helper()
	if c.Image != want {
		t.Errorf("container %s image %q; want %q", c.Name, c.Image, want)
	}
}

// jsonDiff shows the lines where two values' indented JSON differ.
func jsonDiff(got, want any) string {
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	gl, wl := strings.Split(string(g), "\n"), strings.Split(string(w), "\n")
	var b strings.Builder
	for i := 0; i < max(len(gl), len(wl)) && b.Len() < 4000; i++ {
		var a, c string
		if i < len(gl) {
			a = gl[i]
		}
		if i < len(wl) {
			c = wl[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d\n  offline:  %s\n  admitted: %s\n", i+1, strings.TrimSpace(a), strings.TrimSpace(c))
		}
	}
	return b.String()
}
