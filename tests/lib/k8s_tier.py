"""What the tests of playbooks/tier_kubernetes.yml share.

VAULT: the secrets that inventories/kubernetes requires (aistack_required_vars), as a site's vault
file would give them (values made up for the tests; no service checks them here)."""
VAULT = {
    "vault_k8s_postgres_app_password": "pg-app-Secret-0001",
    "vault_k8s_milvus_root_password": "milvus-Root-0001",
    "vault_k8s_object_storage_access_key": "aistack-milvus",
    "vault_k8s_object_storage_secret_key": "s3-Secret-Key-0001",
    "vault_k8s_milvus_kafka_password": "kafka-Scram-0001",
}
