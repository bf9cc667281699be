package main

// The docker CLI plugin protocol, handled directly rather than through
// docker/cli: the binary installed as docker-unroot answers
// 'docker-cli-plugin-metadata' with JSON, and 'docker [GLOBAL FLAGS] unroot
// ARGS...' runs it as 'docker-unroot [GLOBAL FLAGS] unroot ARGS...' with
// DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND set.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

const (
	pluginName        = "unroot"
	pluginBinary      = "docker-" + pluginName
	pluginMetadataCmd = "docker-cli-plugin-metadata"
	// pluginEnv is set by the docker CLI when it runs a plugin.
	pluginEnv = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"
	// pluginSocketEnv names the unix socket through which the docker CLI
	// (24 and later) tells a plugin to stop: it closes the connection.
	pluginSocketEnv = "DOCKER_CLI_PLUGIN_SOCKET"
	// pluginSchemaVersion is the only schema the 20.10 CLI accepts.
	pluginSchemaVersion = "0.1.0"
	projectURL          = "https://github.com/unroot/unroot"
)

// pluginMetadata is what 'docker-unroot docker-cli-plugin-metadata' prints.
type pluginMetadata struct {
	SchemaVersion    string
	Vendor           string
	Version          string
	ShortDescription string
	URL              string
}

func newPluginMetadata() pluginMetadata {
	return pluginMetadata{
		SchemaVersion:    pluginSchemaVersion,
		Vendor:           "unroot",
		Version:          readVersion().Version,
		ShortDescription: "Move Docker workloads from the rootful daemon to a rootless one",
		URL:              projectURL,
	}
}

// addPluginMetadataCmd registers the metadata command only when args call
// it: cobra pads every help listing to its longest command name, hidden ones
// included.
func addPluginMetadataCmd(root *cobra.Command, args []string) {
	if len(args) > 0 && args[0] == pluginMetadataCmd {
		root.AddCommand(newPluginMetadataCmd())
	}
}

// newPluginMetadataCmd answers the docker CLI's plugin discovery. It is hidden:
// people never run it.
func newPluginMetadataCmd() *cobra.Command {
	return &cobra.Command{
		Use:    pluginMetadataCmd,
		Short:  "Print docker CLI plugin metadata",
		Hidden: true,
		Args:   cobra.NoArgs,
		Annotations: map[string]string{
			annotationLocal: "true",
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "     ")
			return enc.Encode(newPluginMetadata())
		},
	}
}

// pluginMode reports whether the process runs as a docker CLI plugin: under
// its plugin name or started by the docker CLI.
func pluginMode(argv0 string, getenv func(string) string) bool {
	return filepath.Base(argv0) == pluginBinary || getenv(pluginEnv) != ""
}

// dockerGlobals are the docker CLI's global flags, which it passes to a plugin
// in front of the plugin's name.
type dockerGlobals struct {
	host, context, config string
}

// env turns the docker CLI's flags into the variables with the same meaning,
// so the source daemon resolves exactly as 'docker' resolved it: -H is
// DOCKER_HOST, --context beats DOCKER_HOST, --config is DOCKER_CONFIG. An
// empty value means unset.
func (d dockerGlobals) env() map[string]string {
	env := map[string]string{}
	if d.config != "" {
		env["DOCKER_CONFIG"] = d.config
	}
	if d.context != "" {
		env["DOCKER_CONTEXT"] = d.context
		env["DOCKER_HOST"] = ""
	}
	if d.host != "" {
		env["DOCKER_HOST"] = d.host
	}
	return env
}

// dockerValueFlags are the docker CLI's global flags that take a value
// (docker 20.10 to 28), mapped to the dockerGlobals field they set, if any.
var dockerValueFlags = map[string]string{
	"--host": "host", "-H": "host",
	"--context": "context", "-c": "context",
	"--config":    "config",
	"--log-level": "", "-l": "",
	"--tlscacert": "", "--tlscert": "", "--tlskey": "",
}

// dockerBoolFlags are the docker CLI's boolean global flags. A flag in
// neither set means the arguments did not come from the docker CLI.
var dockerBoolFlags = map[string]bool{
	"--debug": true, "-D": true, "--tls": true, "--tlsverify": true,
}

// splitPluginArgs takes the arguments the docker CLI passed to the plugin,
// '[GLOBAL FLAGS] unroot ARGS...' (or '__complete unroot ARGS...' for shell
// completion), and returns ARGS (with __complete kept in front) and the global
// flags unroot honours. ok is false, and args are returned unchanged, when they do not
// have that shape (the binary was run directly under its plugin name).
func splitPluginArgs(args []string) (rest []string, globals dockerGlobals, ok bool) {
	set := func(key, v string) {
		switch key {
		case "host":
			globals.host = v
		case "context":
			globals.context = v
		case "config":
			globals.config = v
		}
	}
	// The docker CLI's own completion asks the plugin with
	// '__complete unroot ARGS...'.
	if len(args) >= 2 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) && args[1] == pluginName {
		return append([]string{args[0]}, args[2:]...), globals, true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == pluginName {
			return args[i+1:], globals, true
		}
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return args, dockerGlobals{}, false
		}
		name, value, hasValue := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "--") && len(a) > 2 && !hasValue {
			// -Hunix:///x: a shorthand with its value attached.
			name, value, hasValue = a[:2], a[2:], true
		}
		key, takesValue := dockerValueFlags[name]
		if !takesValue {
			if dockerBoolFlags[name] {
				continue
			}
			return args, dockerGlobals{}, false
		}
		if !hasValue {
			if i+1 >= len(args) {
				return args, dockerGlobals{}, false
			}
			i++
			value = args[i]
		}
		set(key, value)
	}
	return args, dockerGlobals{}, false
}

// pluginArgs prepares the process for plugin mode: it strips the docker CLI's
// part of args and exports the docker global flags as their variables.
// Outside plugin mode it returns args unchanged.
func pluginArgs(argv0 string, args []string) []string {
	if !pluginMode(argv0, os.Getenv) {
		return args
	}
	if len(args) > 0 && args[0] == pluginMetadataCmd {
		return args
	}
	rest, globals, ok := splitPluginArgs(args)
	if !ok {
		return args
	}
	for k, v := range globals.env() {
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
	}
	return rest
}

// adaptForPlugin makes help and usage say 'docker unroot' in plugin mode.
func adaptForPlugin(root *cobra.Command, argv0 string) {
	if !pluginMode(argv0, os.Getenv) {
		return
	}
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = "docker " + pluginName
}

// errPluginStopped is the cause of a context the docker CLI stopped.
var errPluginStopped = errors.New("stopped by the docker CLI")

// pluginSocketContext returns a context that is cancelled when the docker CLI
// closes the plugin socket named in DOCKER_CLI_PLUGIN_SOCKET. The CLI does so
// on SIGINT or SIGTERM when no terminal forwards the signal to the plugin
// itself, and kills the plugin if it is still running after a few more; a
// cancelled context lets a migration stop where it can resume. Without the
// variable, or when the socket cannot be reached, ctx is returned unchanged.
func pluginSocketContext(ctx context.Context) context.Context {
	addr := os.Getenv(pluginSocketEnv)
	if addr == "" {
		return ctx
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return ctx
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		defer conn.Close()
		b := make([]byte, 1)
		for {
			// The CLI never writes; any read error means the connection is gone.
			if _, err := conn.Read(b); err != nil {
				cancel(errPluginStopped)
				return
			}
		}
	}()
	return ctx
}
