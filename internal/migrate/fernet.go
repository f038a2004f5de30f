package migrate

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// errFernet: a Fernet token that the key does not open, or that is not
// one. The two are not told apart: both mean a wrong password.
var errFernet = errors.New("fernet: the key does not open the token")

// fernetOpen decrypts a Fernet token (https://github.com/fernet/spec,
// what Python's cryptography.fernet writes) with a 32-byte key: the
// version byte 0x80, a timestamp, an IV, AES-128-CBC ciphertext and an
// HMAC-SHA256 over the rest. The timestamp is not checked: cached tokens
// have no age limit.
func fernetOpen(key []byte, token string) ([]byte, error) {
	if len(key) != 32 {
		return nil, errFernet
	}
	b, err := base64.URLEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		// Some writers leave out the padding.
		if b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(token), "=")); err != nil {
			return nil, errFernet
		}
	}
	const head, tag = 1 + 8 + aes.BlockSize, sha256.Size
	if len(b) < head+aes.BlockSize+tag || b[0] != 0x80 || (len(b)-head-tag)%aes.BlockSize != 0 {
		return nil, errFernet
	}
	signing, encryption := key[:16], key[16:]
	mac := hmac.New(sha256.New, signing)
	mac.Write(b[:len(b)-tag])
	if !hmac.Equal(mac.Sum(nil), b[len(b)-tag:]) {
		return nil, errFernet
	}
	block, err := aes.NewCipher(encryption)
	if err != nil {
		return nil, errFernet
	}
	iv, ct := b[9:head], b[head:len(b)-tag]
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ct)
	n := int(out[len(out)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, errFernet
	}
	for _, c := range out[len(out)-n:] {
		if int(c) != n {
			return nil, errFernet
		}
	}
	return out[:len(out)-n], nil
}
