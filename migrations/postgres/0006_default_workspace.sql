-- The `default` workspace row that MLflow's Alembic revision 1b5f0d9ad7c1
-- seeds (0001 reproduces MLflow's schema, not its data). Workspace lookups
-- and `mlflow server --enable-workspaces` expect it.
INSERT INTO workspaces (name, description)
VALUES ('default', 'Default workspace for legacy resources')
ON CONFLICT (name) DO NOTHING;
