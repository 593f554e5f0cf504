//! The values of the verifiable map: the commitment to an account's bundle, and the terminal revocation.
