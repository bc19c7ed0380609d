//go:build unix

package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestHAProxyConfig checks haproxy/haproxy.cfg with `haproxy -c`, with the
// defaults of the local run and with the environment compose gives it.
func TestHAProxyConfig(t *testing.T) {
	t.Parallel()
	haproxy := requireTool(t, "haproxy")
	cfg := filepath.Join(repoRoot, "haproxy", "haproxy.cfg")
	for name, env := range map[string][]string{
		"local defaults": nil,
		"compose": {
			"LIVECHAT_FRONTEND=:8080", "LIVECHAT_FRONTEND_TRUSTED=:8090", "LIVECHAT_HAPROXY_STATS=:8404",
			"LIVECHAT_HAPROXY_SOCKET=" + filepath.Join(t.TempDir(), "admin.sock"),
			// Names that do not resolve here: the servers start without an
			// address (init-addr none) and are resolved later.
			"LIVECHAT_S1=livechat1:8080", "LIVECHAT_S2=livechat2:8080", "LIVECHAT_S3=livechat3:8080", "LIVECHAT_S4=livechat4:8080",
		},
	} {
		cmd := exec.Command(haproxy, "-c", "-f", cfg)
		cmd.Env = append(cleanEnv(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: haproxy -c: %v\n%s", name, err, out)
		}
	}
}

// TestNginxConfig renders compose/nginx.conf as the local run does and
// checks it with `nginx -t`.
func TestNginxConfig(t *testing.T) {
	t.Parallel()
	nginx := requireTool(t, "nginx")
	dir := t.TempDir()
	conf := renderNginx(t, dir, freeAddr(t), "127.0.0.1:9")
	if out, err := exec.Command(nginx, "-t", "-e", "stderr", "-p", dir, "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// composeFile is the part of docker-compose.yml the test looks at.
type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Restart     string            `yaml:"restart"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   any               `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// TestComposeFile validates compose/: with `docker compose config` where
// the Compose plugin exists; in any case by parsing docker-compose.yml
// (anchors and merge keys included) and checking the topology, and the
// Dockerfile's shape. No Docker engine is needed.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(repoRoot, "compose")
	path := filepath.Join(dir, "docker-compose.yml")
	if docker, err := exec.LookPath("docker"); err == nil && exec.Command(docker, "compose", "version").Run() == nil {
		if out, err := exec.Command(docker, "compose", "-f", path, "config", "--quiet").CombinedOutput(); err != nil {
			t.Errorf("docker compose config: %v\n%s", err, out)
		}
	} else {
		t.Log("no docker compose plugin here: validating the YAML only")
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(false)
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"redis", "postgres", "livechat1", "livechat2", "livechat3", "livechat4", "haproxy", "nginx"} {
		s, ok := cf.Services[name]
		if !ok {
			t.Errorf("service %s is missing", name)
			continue
		}
		if s.Restart == "" {
			t.Errorf("service %s has no restart policy", name)
		}
		if len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no health check", name)
		}
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	for i := 1; i <= 4; i++ {
		s := cf.Services[fmt.Sprintf("livechat%d", i)]
		if got, want := s.Environment["APPID"], fmt.Sprint(i*1000); got != want {
			t.Errorf("livechat%d: APPID %q, want %q", i, got, want)
		}
		if s.Environment["LIVECHAT_BROKER"] != "redis://redis:6379" || s.Environment["LIVECHAT_TRUST_PROXY"] != "true" {
			t.Errorf("livechat%d: environment %v lacks the broker or --trust-proxy", i, s.Environment)
		}
		if !strings.HasPrefix(s.Environment["LIVECHAT_HISTORY"], "postgres://livechat:livechat@postgres:5432/") {
			t.Errorf("livechat%d: history %q, want the compose PostgreSQL", i, s.Environment["LIVECHAT_HISTORY"])
		}
		if !strings.HasPrefix(s.Environment["LIVECHAT_STORE"], "postgres://livechat:livechat@postgres:5432/") || s.Environment["LIVECHAT_SECRET_FILE"] != "/run/secrets/livechat_secret" {
			t.Errorf("livechat%d: the store %q or the token secret file %q is not the shared one", i, s.Environment["LIVECHAT_STORE"], s.Environment["LIVECHAT_SECRET_FILE"])
		}
		if s.Build.Dockerfile != "compose/Dockerfile" || s.Build.Context != ".." {
			t.Errorf("livechat%d: build %+v", i, s.Build)
		}
		if got, want := cf.Services["haproxy"].Environment[fmt.Sprintf("LIVECHAT_S%d", i)], fmt.Sprintf("livechat%d:8080", i); got != want {
			t.Errorf("haproxy: LIVECHAT_S%d=%q, want %q", i, got, want)
		}
	}
	if ports := cf.Services["nginx"].Ports; len(ports) != 1 || ports[0] != "1007:1007" {
		t.Errorf("nginx ports %v, want [1007:1007]", ports)
	}
	// Every placeholder of the nginx template has a value in compose.
	tmpl, err := os.ReadFile(filepath.Join(dir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range placeholderRE.FindAllStringSubmatch(string(tmpl), -1) {
		if _, ok := cf.Services["nginx"].Environment[m[1]]; !ok {
			t.Errorf("compose/nginx.conf uses ${%s}, which the nginx service does not set", m[1])
		}
	}
	// Every ${VAR} of haproxy.cfg that compose sets exists in the file.
	hcfg, err := os.ReadFile(filepath.Join(repoRoot, "haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range cf.Services["haproxy"].Environment {
		if !strings.Contains(string(hcfg), "${"+k+"-") {
			t.Errorf("compose sets %s for HAProxy, but haproxy.cfg does not use it", k)
		}
	}

	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAll(df, -1)); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", n)
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllSubmatch(df, -1)
	if len(users) == 0 {
		t.Error("Dockerfile sets no USER: the image would run as root")
	} else if u := string(users[len(users)-1][1]); u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		t.Errorf("Dockerfile runs as %s", u)
	}
}
