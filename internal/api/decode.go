package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxBodyBytes bounds a request body. A start request with a large environment is a few
// kilobytes; anything near this size is an error or an attack.
const MaxBodyBytes = 1 << 20

// DecodeStrict decodes one JSON object from data into v. Unknown fields, a field given
// twice at any depth, and trailing data are errors, so that a misspelt option fails
// loudly instead of being ignored.
func DecodeStrict(data []byte, v any) error {
	if err := checkDuplicates(json.NewDecoder(bytes.NewReader(data))); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON body: data after the JSON object")
	}
	return nil
}

// checkDuplicates walks the token stream and returns an error naming the first object
// key that occurs twice in the same object.
func checkDuplicates(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return checkValue(dec, tok, "")
}

func checkValue(dec *json.Decoder, tok json.Token, path string) error {
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '{':
		seen := make(map[string]bool)
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return fmt.Errorf("invalid JSON body: %w", err)
			}
			name, _ := keyTok.(string)
			if seen[name] {
				return fmt.Errorf("invalid JSON body: field %q is given twice", path+name)
			}
			seen[name] = true
			valueTok, err := dec.Token()
			if err != nil {
				return fmt.Errorf("invalid JSON body: %w", err)
			}
			if err := checkValue(dec, valueTok, path+name+"."); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			valueTok, err := dec.Token()
			if err != nil {
				return fmt.Errorf("invalid JSON body: %w", err)
			}
			if err := checkValue(dec, valueTok, path); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}
