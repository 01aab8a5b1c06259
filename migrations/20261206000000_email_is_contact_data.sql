-- A user's email is contact data the caller states, not an identity: nobody proves they own
-- it, so it must not be a key others can probe ("is this address registered?") or take
-- before its owner registers. Identity is the token's (issuer, subject): users_identity_unique.
ALTER TABLE users DROP CONSTRAINT users_email_unique;
