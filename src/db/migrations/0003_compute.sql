-- The identity of this feuilled deployment. Its containers carry it as the
-- io.feuille.instance label, so that reconcile only ever adopts or removes
-- containers of this deployment, never those of another one (or of another
-- test run) sharing the same Podman host.
CREATE TABLE compute_instance (
  id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  only_one boolean NOT NULL DEFAULT true UNIQUE CHECK (only_one)
);
INSERT INTO compute_instance DEFAULT VALUES;
