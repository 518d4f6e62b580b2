package deployments_test

import (
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dashcache/dashcache/scheduler"
)

// Kubernetes objects, as far as these tests read them.
type (
	k8sMeta struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	k8sProbe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
		TCPSocket *struct {
			Port string `yaml:"port"`
		} `yaml:"tcpSocket"`
	}
	k8sKeyRef struct {
		Name string `yaml:"name"`
		Key  string `yaml:"key"`
	}
	k8sContainer struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		EnvFrom []struct {
			ConfigMapRef *k8sKeyRef `yaml:"configMapRef"`
			SecretRef    *k8sKeyRef `yaml:"secretRef"`
		} `yaml:"envFrom"`
		Env []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef     *k8sKeyRef `yaml:"secretKeyRef"`
				ConfigMapKeyRef  *k8sKeyRef `yaml:"configMapKeyRef"`
				ResourceFieldRef *struct{}  `yaml:"resourceFieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		} `yaml:"securityContext"`
	}
	k8sDeployment struct {
		Metadata k8sMeta `yaml:"metadata"`
		Spec     struct {
			Replicas int `yaml:"replicas"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata k8sMeta `yaml:"metadata"`
				Spec     struct {
					TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
					SecurityContext               struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
					} `yaml:"securityContext"`
					Containers []k8sContainer `yaml:"containers"`
					Volumes    []struct {
						Name      string     `yaml:"name"`
						ConfigMap *k8sKeyRef `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	k8sService struct {
		Metadata k8sMeta `yaml:"metadata"`
		Spec     struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	kubernetes struct {
		deployments []k8sDeployment
		services    map[string]k8sService
		configMaps  map[string]map[string]string
		secrets     map[string]map[string]string
	}
)

// loadKubernetes reads the objects of the files kubernetes/kustomization.yaml
// lists, and checks that it lists every manifest there.
func loadKubernetes(t *testing.T) kubernetes {
	t.Helper()
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(readFile(t, "kubernetes/kustomization.yaml"), &kust); err != nil {
		t.Fatal(err)
	}
	all, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range all {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(kust.Resources, base) {
			t.Errorf("kubernetes/kustomization.yaml does not list %s", base)
		}
	}
	k := kubernetes{services: map[string]k8sService{}, configMaps: map[string]map[string]string{}, secrets: map[string]map[string]string{}}
	for _, r := range kust.Resources {
		path := filepath.Join("kubernetes", r)
		for i, doc := range yamlDocs(t, path) {
			var head struct {
				APIVersion string            `yaml:"apiVersion"`
				Kind       string            `yaml:"kind"`
				Metadata   k8sMeta           `yaml:"metadata"`
				Data       map[string]string `yaml:"data"`
				StringData map[string]string `yaml:"stringData"`
			}
			if err := doc.Decode(&head); err != nil {
				t.Fatalf("%s: document %d: %v", path, i+1, err)
			}
			if head.APIVersion == "" || head.Kind == "" || head.Metadata.Name == "" {
				t.Errorf("%s: document %d lacks apiVersion, kind or metadata.name", path, i+1)
			}
			var err error
			switch head.Kind {
			case "Deployment":
				var d k8sDeployment
				err = doc.Decode(&d)
				k.deployments = append(k.deployments, d)
			case "Service":
				var s k8sService
				err = doc.Decode(&s)
				k.services[head.Metadata.Name] = s
			case "ConfigMap":
				k.configMaps[head.Metadata.Name] = head.Data
			case "Secret":
				k.secrets[head.Metadata.Name] = head.StringData
			}
			if err != nil {
				t.Fatalf("%s: %s %s: %v", path, head.Kind, head.Metadata.Name, err)
			}
		}
	}
	return k
}

// env resolves a container's environment from its env, envFrom, ConfigMaps
// and Secrets; a reference to something missing is a problem.
func (k kubernetes) env(c k8sContainer) (map[string]string, []string) {
	env := map[string]string{}
	var problems []string
	source := func(cm, secret *k8sKeyRef) (kind string, data map[string]string, ref *k8sKeyRef) {
		kind, from, ref := "Secret", k.secrets, secret
		if ref == nil {
			kind, from, ref = "ConfigMap", k.configMaps, cm
		}
		data, ok := from[ref.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("refers to %s %s, which is not in the manifests", kind, ref.Name))
		}
		return kind, data, ref
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil || ef.SecretRef != nil {
			_, data, _ := source(ef.ConfigMapRef, ef.SecretRef)
			maps.Copy(env, data)
		}
	}
	for _, e := range c.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = e.Value
		case vf.SecretKeyRef != nil || vf.ConfigMapKeyRef != nil:
			kind, data, ref := source(vf.ConfigMapKeyRef, vf.SecretKeyRef)
			v, ok := data[ref.Key]
			if data != nil && !ok {
				problems = append(problems, fmt.Sprintf("%s: %s %s has no key %s", e.Name, kind, ref.Name, ref.Key))
			}
			env[e.Name] = v
		}
	}
	return env, problems
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	k := loadKubernetes(t)
	byRole := map[string]int{}
	for _, d := range k.deployments {
		name := "Deployment " + d.Metadata.Name
		pod := d.Spec.Template.Spec
		for key, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Metadata.Labels[key] != v {
				t.Errorf("%s: selector %s=%s does not match the pod template's labels", name, key, v)
			}
		}
		if !pod.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: want securityContext.runAsNonRoot: true", name)
		}
		for _, c := range pod.Containers {
			where := name + ", container " + c.Name
			if !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				t.Errorf("%s: want readOnlyRootFilesystem: true and allowPrivilegeEscalation: false", where)
			}
			if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
				t.Errorf("%s: want cpu and memory requests and a memory limit", where)
			}
			if !isDashcacheImage(c.Image) {
				continue
			}
			if len(c.Args) != 1 {
				t.Errorf("%s: args %q, want one role", where, c.Args)
				continue
			}
			role := c.Args[0]
			byRole[role] += d.Spec.Replicas
			env, problems := k.env(c)
			problems = append(problems, startupProblems(role, env)...)
			for _, p := range problems {
				t.Errorf("%s (%s): %s", where, role, p)
			}
			if g := pod.TerminationGracePeriodSeconds; g == nil || *g < 30 {
				t.Errorf("%s: want terminationGracePeriodSeconds of at least 30 (the API drains for up to 20 s, a worker requeues after 8 s)", where)
			}
			port := listenPort(env)
			ports := map[string]bool{}
			for _, p := range c.Ports {
				if strconv.Itoa(p.ContainerPort) != port {
					t.Errorf("%s: containerPort %d, but DASHCACHE_LISTEN is %s", where, p.ContainerPort, env["DASHCACHE_LISTEN"])
				}
				ports[p.Name], ports[strconv.Itoa(p.ContainerPort)] = true, true
			}
			probes := map[string]*k8sProbe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe}
			for kind, pr := range probes {
				switch {
				case pr == nil:
					t.Errorf("%s: no %s", where, kind)
				case pr.HTTPGet != nil:
					want := map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"}[kind]
					if pr.HTTPGet.Path != want || !ports[pr.HTTPGet.Port] {
						t.Errorf("%s: %s GET %s on port %s, want %s on a declared container port", where, kind, pr.HTTPGet.Path, pr.HTTPGet.Port, want)
					}
				case pr.TCPSocket != nil && role == "fakebi": // fakebi serves no /readyz
				default:
					t.Errorf("%s: %s is not an httpGet", where, kind)
				}
			}
			if role != "fakebi" {
				a := d.Spec.Template.Metadata.Annotations
				if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != port || a["prometheus.io/path"] != "/metrics" {
					t.Errorf("%s: prometheus.io annotations %v, want scrape true, port %s, path /metrics", where, a, port)
				}
			}
			if file := env["DASHCACHE_SCHEDULE_FILE"]; file != "" {
				data, err := k.scheduleFile(file, c, d)
				if err == nil {
					_, err = scheduler.Parse(data)
				}
				if err != nil {
					t.Errorf("%s: %v", where, err)
				}
			}
			for _, v := range []string{"DASHCACHE_REDIS_URL", "DASHCACHE_PROVIDER_URL"} {
				if u, err := url.Parse(env[v]); env[v] != "" && (err != nil || !k.serves(u.Hostname(), u.Port())) {
					t.Errorf("%s: %s %q names no Service of the manifests on that port", where, v, env[v])
				}
			}
		}
	}
	for role, want := range map[string]int{"api": 2, "worker": 2, "scheduler": 1} {
		if byRole[role] != want {
			t.Errorf("kubernetes runs %d %s replicas, want %d", byRole[role], role, want)
		}
	}
	for name, s := range k.services {
		if !k.selects(s) {
			t.Errorf("Service %s: no pod template has its selector's labels and a container port named by each targetPort", name)
		}
	}
}

// scheduleFile returns the contents of the schedule file a container
// reads: a key of a ConfigMap mounted where the file is.
func (k kubernetes) scheduleFile(file string, c k8sContainer, d k8sDeployment) ([]byte, error) {
	for _, m := range c.VolumeMounts {
		if filepath.Dir(file) != filepath.Clean(m.MountPath) {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			data, ok := k.configMaps[v.ConfigMap.Name][filepath.Base(file)]
			if !ok {
				return nil, fmt.Errorf("ConfigMap %s has no key %s for DASHCACHE_SCHEDULE_FILE", v.ConfigMap.Name, filepath.Base(file))
			}
			return []byte(data), nil
		}
	}
	return nil, fmt.Errorf("DASHCACHE_SCHEDULE_FILE %s is not in a mounted ConfigMap", file)
}

// serves tells whether a Service named host has the port.
func (k kubernetes) serves(host, port string) bool {
	for _, p := range k.services[host].Spec.Ports {
		if strconv.Itoa(p.Port) == port {
			return true
		}
	}
	return false
}

// selects tells whether a Service selects some pod template of the
// manifests; see selectsDeployment.
func (k kubernetes) selects(s k8sService) bool {
	return slices.ContainsFunc(k.deployments, func(d k8sDeployment) bool { return k.selectsDeployment(s, d) })
}

// selectsDeployment tells whether a Service selects the pods of d and d's
// containers have every port the Service targets.
func (k kubernetes) selectsDeployment(s k8sService, d k8sDeployment) bool {
	labels := d.Spec.Template.Metadata.Labels
	if len(s.Spec.Selector) == 0 {
		return false
	}
	for key, v := range s.Spec.Selector {
		if labels[key] != v {
			return false
		}
	}
	ports := map[string]bool{}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.Name], ports[strconv.Itoa(p.ContainerPort)] = true, true
		}
	}
	for _, p := range s.Spec.Ports {
		if !ports[p.TargetPort] {
			return false
		}
	}
	return true
}
