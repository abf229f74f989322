package check

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/testkit"
)

// The deployment examples of a group.
const (
	k8sFile          = "../kubernetes/tagstream.yaml"
	k8sGroupFile     = "../kubernetes/tagstream-group.yaml"
	systemdUnit      = "../systemd/tagstream.service"
	systemdGroupConf = "../systemd/tagstream-group.conf"
	systemdGroupEnv  = "../systemd/tagstream-group.env"
	exampleConfig    = "../tagstream.example.yaml"
)

// k8sObject is the part of a Kubernetes object these checks read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas       *int `yaml:"replicas"`
		MaxUnavailable any  `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []struct {
					Args []string `yaml:"args"`
					Env  []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom *struct {
							FieldRef *struct {
								FieldPath string `yaml:"fieldPath"`
							} `yaml:"fieldRef"`
							SecretKeyRef *struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					ReadinessProbe struct {
						HTTPGet struct {
							Path string `yaml:"path"`
						} `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// readK8s decodes every document of a Kubernetes manifest.
func readK8s(t *testing.T, path string) []k8sObject {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(objs)+1, err)
		}
		objs = append(objs, o)
	}
}

// loadRunConfig loads the settings `tagstream run args` would run with, given env, through the command's own
// loader (every key known, every value valid). Paths under /etc/tagstream and /var/lib/tagstream are mapped into a
// temporary directory holding the config file, a tokens file and a state directory.
func loadRunConfig(t *testing.T, configYAML string, args, env []string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tagstream.yaml")
	state := filepath.Join(dir, "state")
	tokens := testkit.WriteTokens(t, "example-token-one-0123456789", "example-token-two-0123456789")
	configYAML = strings.ReplaceAll(configYAML, "/var/lib/tagstream", state)
	configYAML = strings.ReplaceAll(configYAML, "/etc/tagstream/tokens", tokens)
	if err := os.WriteFile(cfgPath, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	var mapped []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case i > 0 && args[i-1] == "--config":
			a = cfgPath
		case i > 0 && args[i-1] == "--tokens-file":
			a = tokens
		case i > 0 && args[i-1] == "--state-dir":
			a = state
		}
		mapped = append(mapped, a)
	}
	if len(mapped) == 0 || mapped[0] != "run" {
		t.Fatalf("args %q: want `run ...`", args)
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	loader := config.NewLoader(fs, config.GroupAll, config.Needs{Tags: true, Tokens: true}, config.Defaults())
	if err := fs.Parse(mapped[1:]); err != nil {
		t.Fatalf("run %q: %v", mapped[1:], err)
	}
	cfg, err := loader.Load(env)
	if err != nil {
		t.Fatalf("the settings of the example do not load: %v", err)
	}
	for _, w := range cfg.Warnings {
		if !strings.HasPrefix(w, "api-url ") { // the examples name the real API, which is gone
			t.Errorf("warning: %s", w)
		}
	}
	return cfg
}

// k8sWorkload returns the ConfigMap and the workload (kind) of a manifest, and the settings `run` loads from them:
// the ConfigMap's tagstream.yaml, the container's args, its environment (a pod name for metadata.name, two tokens
// for the Secret tagstream-tokens). It checks what every example needs: the readiness probe on /readyz, the tokens
// from the Secret as TAGSTREAM_TOKENS (a Secret volume's files are group-readable under fsGroup, and tagstream
// refuses such a tokens-file), the ConfigMap mounted the manifest defines.
func k8sWorkload(t *testing.T, path, kind string) (map[string]k8sObject, *config.Config) {
	t.Helper()
	byKind := map[string]k8sObject{}
	for _, o := range readK8s(t, path) {
		byKind[o.Kind] = o
	}
	cm, w := byKind["ConfigMap"], byKind[kind]
	if len(w.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", kind, len(w.Spec.Template.Spec.Containers))
	}
	c := w.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe on %q, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}
	for _, v := range w.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name != cm.Metadata.Name {
			t.Errorf("volume %s mounts ConfigMap %q; the file defines %q", v.Name, v.ConfigMap.Name, cm.Metadata.Name)
		}
		if v.Secret != nil && v.Secret.SecretName == "tagstream-tokens" {
			t.Errorf("volume %s mounts the tokens: its files are group-readable under fsGroup, which tokens-file refuses; "+
				"use TAGSTREAM_TOKENS from the Secret", v.Name)
		}
	}
	var env []string
	tokens := false
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = "tagstream-5d8c7b9f4-x2kq9" // a pod name
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			v = "10.244.1.7" // a pod IP
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "tagstream-tokens":
			v, tokens = "example-token-one-0123456789\nexample-token-two-0123456789", e.Name == "TAGSTREAM_TOKENS"
		case e.ValueFrom != nil:
			t.Fatalf("env %s: a valueFrom this check does not know", e.Name)
		}
		// $(NAME) names a variable defined before, as Kubernetes expands it.
		for _, kv := range env {
			name, val, _ := strings.Cut(kv, "=")
			v = strings.ReplaceAll(v, "$("+name+")", val)
		}
		env = append(env, e.Name+"="+v)
	}
	if !tokens {
		t.Error("no TAGSTREAM_TOKENS from the Secret tagstream-tokens")
	}
	return byKind, loadRunConfig(t, cm.Data["tagstream.yaml"], c.Args, env)
}

// TestKubernetesGroupExample checks deploy/kubernetes/tagstream-group.yaml: its settings load as `run` loads them
// and make a group member (group mode, cursors in JetStream, three NATS servers, each replica named by its pod),
// three replicas with /readyz as the readiness probe, the tokens from the Secret, a PodDisruptionBudget.
func TestKubernetesGroupExample(t *testing.T) {
	objs, cfg := k8sWorkload(t, k8sGroupFile, "Deployment")
	dep, pdb := objs["Deployment"], objs["PodDisruptionBudget"]
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("Deployment replicas %v, want 3", dep.Spec.Replicas)
	}
	if pdb.Kind == "" || pdb.Spec.MaxUnavailable == nil || pdb.Spec.Selector.MatchLabels["app"] != dep.Spec.Template.Metadata.Labels["app"] {
		t.Errorf("PodDisruptionBudget %+v: want maxUnavailable and the Deployment's pods", pdb.Spec)
	}
	checkGroupMember(t, cfg, "tagstream-5d8c7b9f4-x2kq9")
	if cfg.GroupStatusURL != "http://10.244.1.7:9464" {
		t.Errorf("group-status-url %q, want the pod's IP and the metrics port", cfg.GroupStatusURL)
	}
}

// TestKubernetesExample checks that the settings of the single-instance manifest load as `run` loads them.
func TestKubernetesExample(t *testing.T) {
	_, cfg := k8sWorkload(t, k8sFile, "StatefulSet")
	if cfg.Group != "" || len(cfg.Credentials) != 2 {
		t.Errorf("group %q, %d tokens: want a single instance with the Secret's two tokens", cfg.Group, len(cfg.Credentials))
	}
}

// TestSystemdGroupExample checks deploy/systemd: the unit's ExecStart with the drop-in's environment file and the
// example configuration loads as `run` loads it and makes a group member.
func TestSystemdGroupExample(t *testing.T) {
	unit, err := os.ReadFile(systemdUnit)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for line := range strings.Lines(string(unit)) {
		if rest, ok := strings.CutPrefix(line, "ExecStart="); ok {
			args = strings.Fields(rest)[1:] // the binary's path, then its arguments
		}
	}
	conf, err := os.ReadFile(systemdGroupConf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "\nEnvironmentFile=/etc/tagstream/group.env\n") {
		t.Errorf("%s does not read /etc/tagstream/group.env", systemdGroupConf)
	}
	f, err := os.Open(systemdGroupEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "TAGSTREAM_") || !strings.Contains(line, "=") {
			t.Errorf("%s: %q is not a TAGSTREAM_ variable", systemdGroupEnv, line)
		}
		env = append(env, line)
	}
	example, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadRunConfig(t, string(example), args, env)
	checkGroupMember(t, cfg, "ts-1")
}

// checkGroupMember checks that cfg runs a member named member of a group on a three-node NATS cluster, with the
// cursors in JetStream and three replicas of what it creates.
func checkGroupMember(t *testing.T, cfg *config.Config, member string) {
	t.Helper()
	if cfg.Group == "" || cfg.GroupMember != member {
		t.Errorf("group %q, member %q: want a group and the member name %q", cfg.Group, cfg.GroupMember, member)
	}
	if cfg.CheckpointStore != config.StoreJetStreamKV {
		t.Errorf("checkpoint-store %q, want %s (the members share the cursors)", cfg.CheckpointStore, config.StoreJetStreamKV)
	}
	if n := len(strings.Split(cfg.NATSURL, ",")); n != 3 {
		t.Errorf("nats-url %q: %d servers, want the cluster's three", cfg.NATSURL, n)
	}
	if cfg.Replicas != 3 {
		t.Errorf("replicas %d, want 3 (one copy of the stream and the cursors per server)", cfg.Replicas)
	}
}
