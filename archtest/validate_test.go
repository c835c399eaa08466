package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// configKey is how a Validate error names what is wrong: the key path as
// the flag is spelled when a flag sets it (metrics.max-series-per-metric,
// retention.traces, data-dir), else in the same style: dotted kebab-case
// words, [%d] for an index, several keys joined by ", ", then ": ".
var configKey = regexp.MustCompile(`^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*|\[%d\])*(, [a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*|\[%d\])*)*: `)

// Every error a config's Validate method makes (a string literal given to
// fmt.Errorf or errors.New in it) starts with the key path of what is
// wrong, in one convention.
func TestValidateErrorsNameKeysOneWay(t *testing.T) {
	root := filepath.Join("..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Name.Name != "Validate" || fn.Recv == nil || fn.Body == nil || !strings.HasSuffix(recvType(fn), "Config") {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 || !isErrorf(call.Fun) {
					return true
				}
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true // a key built elsewhere (a "%s: " of a list of keys)
				}
				s, _ := strconv.Unquote(lit.Value)
				if strings.HasPrefix(s, "%s: ") || strings.HasPrefix(s, "%w") {
					return true
				}
				checked++
				if !configKey.MatchString(s) {
					t.Errorf("%s: %s.Validate: %q does not start with a key path (dotted kebab-case, as the flags are spelled) and \": \"", path, recvType(fn), s)
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 30 {
		t.Fatalf("only %d Validate errors found; the walk is broken", checked)
	}
}

func recvType(fn *ast.FuncDecl) string {
	switch t := fn.Recv.List[0].Type.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.StarExpr:
		if id, ok := t.X.(*ast.Ident); ok {
			return id.Name
		}
	}
	return ""
}

func isErrorf(fun ast.Expr) bool {
	sel, ok := fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && (pkg.Name == "fmt" && sel.Sel.Name == "Errorf" || pkg.Name == "errors" && sel.Sel.Name == "New")
}
