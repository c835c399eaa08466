package model

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Result is one load of the mesh config: the Mesh when it is valid, else
// the errors; warnings either way.
type Result struct {
	// Mesh is nil when there are errors.
	Mesh *Mesh
	// Objects are every object read, valid or not (defaults applied), and
	// ReadErrors the errors of reading, parsing and importing them (a
	// subset of Errors, which adds validation's): what Contain needs to
	// make the most of a load with errors.
	Objects    Objects
	ReadErrors []Diagnostic
	// Errors and Warnings are sorted by file and line.
	Errors, Warnings []Diagnostic
	// Files is how many files were read.
	Files int
	// Digest is a hash of the names and contents of the files read: equal
	// digests mean the same input, so a watcher can skip a reload that
	// changed nothing.
	Digest string
}

// Load reads the mesh config at path: every *.yaml and *.yml file under a
// directory, recursively and in lexical order, or the one file named. Hidden
// files and directories (names starting with '.', such as editors' swap
// files and Kubernetes' ..data) are skipped; symbolic links to files are
// followed. A missing path is an error; callers that treat it as an empty
// mesh check for it first.
func Load(path string) Result {
	var objs Objects
	res := readFiles(path, func(file string, data []byte) []Diagnostic {
		o, errs := Parse(file, data)
		objs.Append(o)
		return errs
	})
	mesh, errs, warns := Validate(objs)
	res.Objects, res.ReadErrors = objs, slices.Clone(res.Errors)
	res.Errors = append(res.Errors, errs...)
	res.Warnings = warns
	sortDiagnostics(res.Errors)
	if len(res.Errors) == 0 {
		res.Mesh = mesh
	}
	return res
}

// readFiles reads the files of the config at path (configFiles), calling
// parse with each one's content: a Result with the files read, the digest
// of their names and contents, and the read and parse errors.
func readFiles(path string, parse func(file string, data []byte) []Diagnostic) Result {
	files, errs := configFiles(path)
	res := Result{Files: len(files), Errors: errs}
	hash := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			res.Errors = append(res.Errors, Diagnostic{File: f, Message: err.Error()})
			continue
		}
		hash.Write([]byte(f + "\x00" + strconv.Itoa(len(data)) + "\x00"))
		hash.Write(data)
		res.Errors = append(res.Errors, parse(f, data)...)
	}
	res.Digest = hex.EncodeToString(hash.Sum(nil))
	return res
}

// configFiles lists the files Load reads at path, and what could not be
// listed.
func configFiles(path string) ([]string, []Diagnostic) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, []Diagnostic{{File: path, Message: err.Error()}}
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	// WalkDir does not follow a symbolic link at its root, unless the
	// name ends in a separator.
	root := path
	if l, err := os.Lstat(path); err == nil && l.Mode()&fs.ModeSymlink != 0 {
		root = path + string(filepath.Separator)
	}
	var files []string
	var errs []Diagnostic
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			errs = append(errs, Diagnostic{File: p, Message: err.Error()})
			return nil
		case p != root && strings.HasPrefix(d.Name(), "."):
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case d.IsDir() || !IsConfigFile(p):
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		case !d.Type().IsRegular():
			return nil
		}
		files = append(files, p)
		return nil
	})
	slices.Sort(files)
	return files, errs
}

// IsConfigFile reports whether a file name is one Load reads in a directory:
// *.yaml or *.yml, not hidden.
func IsConfigFile(name string) bool {
	base := filepath.Base(name)
	ext := strings.ToLower(filepath.Ext(base))
	return !strings.HasPrefix(base, ".") && (ext == ".yaml" || ext == ".yml")
}
