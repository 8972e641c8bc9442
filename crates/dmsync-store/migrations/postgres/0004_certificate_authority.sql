-- The local certificate authority that signs the HTTPS leaves (issue 16). One row at most: the
-- first replica to start on an empty database writes it, and every later start, and every
-- other replica, reads that one back.
CREATE TABLE certificate_authority (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    certificate_pem TEXT COLLATE "C" NOT NULL,
    private_key_pem TEXT COLLATE "C" NOT NULL,
    created_at      BIGINT NOT NULL
);
