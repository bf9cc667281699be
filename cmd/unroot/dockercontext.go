package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// defaultContextName is the docker CLI's built-in context: DOCKER_HOST or the
// default socket, never a file under contexts/.
const defaultContextName = "default"

// dockerEndpoint is the daemon address the docker CLI itself would talk to,
// and why.
type dockerEndpoint struct {
	Host string
	// Context is the non-default docker context Host came from, if any.
	Context string
}

// contextNotFoundError is a docker context that is named but has no metadata.
type contextNotFoundError struct {
	name string
	path string
}

func (e *contextNotFoundError) Error() string {
	return fmt.Sprintf("docker context %q not found (no %s)", e.name, e.path)
}

func (e *contextNotFoundError) Hint() string {
	return "list contexts with 'docker context ls', or name the daemon with --source-host or DOCKER_HOST"
}

// resolveDockerEndpoint follows the docker CLI's order for choosing a daemon,
// minus its command-line flags (plugin mode turns those into the same
// variables first): DOCKER_HOST; then the context named by DOCKER_CONTEXT or by
// "currentContext" in the CLI's config.json (under DOCKER_CONFIG, else
// HOME/.docker); then defaultSourceHost. getenv is os.Getenv outside tests.
func resolveDockerEndpoint(getenv func(string) string) (dockerEndpoint, error) {
	if h := getenv("DOCKER_HOST"); h != "" {
		return dockerEndpoint{Host: h}, nil
	}
	dir := dockerConfigDir(getenv)
	name := getenv("DOCKER_CONTEXT")
	if name == "" {
		var err error
		if name, err = currentContext(filepath.Join(dir, "config.json")); err != nil {
			return dockerEndpoint{}, err
		}
	}
	if name == "" || name == defaultContextName {
		return dockerEndpoint{Host: defaultSourceHost}, nil
	}
	host, err := contextHost(dir, name)
	if err != nil {
		return dockerEndpoint{}, err
	}
	if host == "" {
		// A context without a docker endpoint host means the default, as in the CLI.
		host = defaultSourceHost
	}
	return dockerEndpoint{Host: host, Context: name}, nil
}

// dockerConfigDir is where the docker CLI keeps config.json and contexts/.
func dockerConfigDir(getenv func(string) string) string {
	if d := getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".docker")
}

// currentContext reads "currentContext" from a docker CLI config.json; a
// missing file means none.
func currentContext(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read docker config: %w", err)
	}
	var cfg struct {
		CurrentContext string `json:"currentContext"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("parse docker config %s: %w", path, err)
	}
	return cfg.CurrentContext, nil
}

// contextHost reads the docker endpoint of context name from the CLI's
// context store: contexts/meta/<sha256 of name>/meta.json.
func contextHost(configDir, name string) (string, error) {
	sum := sha256.Sum256([]byte(name))
	path := filepath.Join(configDir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", &contextNotFoundError{name: name, path: path}
	}
	if err != nil {
		return "", fmt.Errorf("read docker context %q: %w", name, err)
	}
	var meta struct {
		Endpoints struct {
			Docker struct {
				Host string `json:"Host"`
			} `json:"docker"`
		} `json:"Endpoints"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return "", fmt.Errorf("parse docker context %q (%s): %w", name, path, err)
	}
	return meta.Endpoints.Docker.Host, nil
}

// annotationLocal marks a command that talks to no daemon, so a broken docker
// context does not fail it.
const annotationLocal = "unroot/local"

// localCommand reports whether cmd never reads the source daemon. Commands
// in other files are listed by name; new ones can set annotationLocal.
func localCommand(cmd *cobra.Command) bool {
	switch cmd.Name() {
	case "help", "version", "chown", "status", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		return true
	}
	return cmd.Annotations[annotationLocal] != ""
}
