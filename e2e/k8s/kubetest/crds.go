package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// ReadCRDs decodes every CustomResourceDefinition in the *.yaml and *.yml
// files of dir (several documents per file allowed); other kinds are errors.
func ReadCRDs(dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", f, i, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 || isOnlyComments(doc) {
				continue
			}
			var crd apiextensionsv1.CustomResourceDefinition
			if err := yaml.UnmarshalStrict(doc, &crd); err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", f, i, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				return nil, fmt.Errorf("%s: document %d: kind %q, want CustomResourceDefinition", f, i, crd.Kind)
			}
			crds = append(crds, &crd)
		}
	}
	return crds, nil
}

// InstallCRDs creates every CRD of dir (ReadCRDs) and waits until each is
// Established and its resource is served. A CRD that already exists is
// updated to the file's version.
func InstallCRDs(ctx context.Context, cfg *rest.Config, dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := ReadCRDs(dir)
	if err != nil {
		return nil, err
	}
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	api := cs.ApiextensionsV1().CustomResourceDefinitions()
	for _, crd := range crds {
		_, err := api.Create(ctx, crd, metav1.CreateOptions{FieldValidation: "Strict"})
		if apierrors.IsAlreadyExists(err) {
			var old *apiextensionsv1.CustomResourceDefinition
			if old, err = api.Get(ctx, crd.Name, metav1.GetOptions{}); err == nil {
				crd.ResourceVersion = old.ResourceVersion
				_, err = api.Update(ctx, crd, metav1.UpdateOptions{FieldValidation: "Strict"})
			}
		}
		if err != nil {
			return nil, fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range crds {
		var got *apiextensionsv1.CustomResourceDefinition
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			c, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			got = c
			return condition(c, apiextensionsv1.Established) && condition(c, apiextensionsv1.NamesAccepted), nil
		})
		if err != nil {
			return nil, fmt.Errorf("CRD %s not established: %w (conditions %v)", crd.Name, err, conditions(got))
		}
		if err := waitServed(ctx, cfg, got); err != nil {
			return nil, err
		}
		out = append(out, got)
	}
	return out, nil
}

// waitServed waits until discovery lists the CRD's resource in every served
// version: Established comes a moment before the handler serves it.
func waitServed(ctx context.Context, cfg *rest.Config, crd *apiextensionsv1.CustomResourceDefinition) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		gv := crd.Spec.Group + "/" + v.Name
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			list, err := cs.Discovery().ServerResourcesForGroupVersion(gv)
			if err != nil {
				return false, nil
			}
			for _, r := range list.APIResources {
				if r.Name == crd.Spec.Names.Plural {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s: %s not served in %s: %w", crd.Name, crd.Spec.Names.Plural, gv, err)
		}
	}
	return nil
}

func condition(c *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == t {
			return cond.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

func conditions(c *apiextensionsv1.CustomResourceDefinition) []string {
	if c == nil {
		return nil
	}
	var s []string
	for _, cond := range c.Status.Conditions {
		s = append(s, fmt.Sprintf("%s=%s (%s)", cond.Type, cond.Status, cond.Message))
	}
	return s
}

func isOnlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") && l != "---" {
			return false
		}
	}
	return true
}
