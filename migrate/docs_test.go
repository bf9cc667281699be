package migrate

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/unroot/unroot/chown"
)

// findingCodes reads the values of the Code* constants from findings.go, so
// a new code cannot be added without the docs test seeing it.
func findingCodes(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "findings.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", name.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				codes[v] = name.Name
			}
		}
	}
	if len(codes) < 40 {
		t.Fatalf("found only %d Code constants in findings.go", len(codes))
	}
	return codes
}

func readAuditDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAuditDocCodes fails when a finding code is not documented in
// docs/audit.md, or the doc describes a code that does not exist.
func TestAuditDocCodes(t *testing.T) {
	codes := findingCodes(t)
	doc := readAuditDoc(t)
	heading := regexp.MustCompile("(?m)^### `([^`]+)`\n\\*\\*(blocker|warning|info)")
	documented := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(doc, -1) {
		if documented[m[1]] {
			t.Errorf("docs/audit.md documents %q twice", m[1])
		}
		documented[m[1]] = true
		if _, ok := codes[m[1]]; !ok {
			t.Errorf("docs/audit.md documents %q, which findings.go does not define", m[1])
		}
	}
	for v, name := range codes {
		if !documented[v] {
			t.Errorf("%s = %q has no '### `%s`' section with a severity in docs/audit.md", name, v, v)
		}
	}
}

// TestAuditDocFields fails when a JSON field of chown.Report is not named in
// docs/audit.md.
func TestAuditDocFields(t *testing.T) {
	doc := readAuditDoc(t)
	for _, typ := range []reflect.Type{reflect.TypeFor[chown.Report](), reflect.TypeFor[chown.OwnerChange](), reflect.TypeFor[chown.UnmappableID]()} {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(doc, "`"+name+"`") {
				t.Errorf("docs/audit.md does not explain %s field %q", typ.Name(), name)
			}
		}
	}
}

// TestPlanSchemaDocFields fails when a JSON field of the plan is missing from
// docs/plan-schema.md.
func TestPlanSchemaDocFields(t *testing.T) {
	b, err := os.ReadFile("../docs/plan-schema.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	types := []reflect.Type{
		reflect.TypeFor[Plan](), reflect.TypeFor[User](), reflect.TypeFor[Daemon](), reflect.TypeFor[MapInfo](),
		reflect.TypeFor[Service](), reflect.TypeFor[PortPlan](), reflect.TypeFor[ImagePlan](), reflect.TypeFor[NetworkPlan](),
		reflect.TypeFor[VolumePlan](), reflect.TypeFor[BindPlan](), reflect.TypeFor[Finding](), reflect.TypeFor[Summary](),
		reflect.TypeFor[Prerequisite](),
	}
	for _, typ := range types {
		for f := range typ.Fields() {
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !strings.Contains(doc, "`"+name+"`") {
				t.Errorf("docs/plan-schema.md does not document %s field %q", typ.Name(), name)
			}
		}
	}
	for f := range reflect.TypeFor[chown.Range]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !strings.Contains(doc, `"`+name+`"`) {
			t.Errorf("docs/plan-schema.md does not show Range field %q", name)
		}
	}
	if !strings.Contains(doc, "schema_version 1") || SchemaVersion != 1 {
		t.Errorf("docs/plan-schema.md describes schema_version 1; the code is at %d", SchemaVersion)
	}
}
