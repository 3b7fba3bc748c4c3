//! `--auth token`: keys exchanged for tokens, every route guarded by the
//! permission the table gives it, and refusals that say what to do.

use std::time::Duration;

use ferroflow::auth::keys;
use ferroflow::auth::permissions::{Permission, Role, ROUTES};
use ferroflow::store::AccessStore;
use reqwest::{Method, RequestBuilder};
use serde_json::json;

use crate::helpers::{spawn_with_tokens, Answer, TestApp};

const HOUR: Duration = Duration::from_secs(3600);

/// A key for `principal`: a server admin, or `role` in `workspace`.
async fn key(app: &TestApp, principal: &str, grant: Option<(&str, Role)>) -> String {
    app.store
        .ensure_principal(principal, grant.is_none())
        .await
        .unwrap();
    if let Some((workspace, role)) = grant {
        app.store
            .bind_role(principal, workspace, role)
            .await
            .unwrap();
    }
    let key = keys::generate();
    app.store
        .create_key(&key.key_id, principal, &key.secret_sha256, None)
        .await
        .unwrap();
    key.plaintext
}

async fn exchange(app: &TestApp, key: &str, workspace: &str) -> Answer {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_secret", key),
        ("scope", workspace),
    ];
    app.send(app.http.post(app.url("/oauth/token")).form(&form))
        .await
}

async fn token(app: &TestApp, key: &str, workspace: &str) -> String {
    let answer = exchange(app, key, workspace).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "Bearer");
    answer.body["access_token"].as_str().unwrap().to_string()
}

fn create_experiment(app: &TestApp, name: &str) -> RequestBuilder {
    app.http
        .post(app.url("/api/2.0/mlflow/experiments/create"))
        .json(&json!({ "name": name }))
}

fn search_experiments(app: &TestApp) -> RequestBuilder {
    app.http
        .get(app.url("/api/2.0/mlflow/experiments/search?max_results=10"))
}

#[tokio::test]
async fn every_route_in_the_table_is_served_and_guarded() {
    let app = spawn_with_tokens(false, HOUR).await;
    for (method, path, permission) in ROUTES {
        let path = path
            .replace("{*path}", "0/r/artifacts/a.txt")
            .replace("{name}", "default")
            .replace("{model_id}", "m-1")
            .replace("{tag_key}", "k");
        let method = if *method == "*" { "GET" } else { method };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut answer = app
            .send(app.http.request(method.clone(), app.url(&path)))
            .await;
        // Some routes MLflow serves to its UI only, under /ajax-api.
        if answer.body["error_code"] == "ENDPOINT_NOT_FOUND" && path.starts_with("/api/") {
            let ajax = format!("/ajax-api/{}", &path["/api/".len()..]);
            answer = app
                .send(app.http.request(method.clone(), app.url(&ajax)))
                .await;
        }
        let label = format!("{method} {path}: {} {}", answer.status, answer.body);
        assert_ne!(answer.body["error_code"], "ENDPOINT_NOT_FOUND", "{label}");
        if *permission == Permission::Public {
            assert_ne!(answer.status, 401, "{label}");
        } else {
            assert_eq!(answer.status, 401, "{label}");
            assert_eq!(answer.body["error_code"], "UNAUTHENTICATED", "{label}");
        }
    }
}

#[tokio::test]
async fn roles_allow_what_their_names_say() {
    let app = spawn_with_tokens(false, HOUR).await;
    let reader = token(
        &app,
        &key(&app, "reader", Some(("default", Role::Read))).await,
        "default",
    )
    .await;
    let editor = token(
        &app,
        &key(&app, "editor", Some(("default", Role::Edit))).await,
        "default",
    )
    .await;
    let admin = token(&app, &key(&app, "root", None).await, "default").await;

    let searched = app
        .send(search_experiments(&app).bearer_auth(&reader))
        .await;
    assert_eq!(searched.status, 200, "{}", searched.body);
    let refused = app
        .send(create_experiment(&app, "r").bearer_auth(&reader))
        .await;
    let message = refused.error(403, "PERMISSION_DENIED");
    assert!(message.contains("needs EDIT"), "{message}");
    let created = app
        .send(create_experiment(&app, "e").bearer_auth(&editor))
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let by_admin = app
        .send(create_experiment(&app, "a").bearer_auth(&admin))
        .await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.body);
    // The token as HTTP Basic's password, any username (MLFLOW_TRACKING_PASSWORD).
    let basic = app
        .send(search_experiments(&app).basic_auth("anyone", Some(&editor)))
        .await;
    assert_eq!(basic.status, 200, "{}", basic.body);
    // gc removes every workspace's deleted entities: server admins only.
    let gc = |token: &str| {
        app.http
            .post(app.url("/api/3.0/ferroflow/gc"))
            .bearer_auth(token)
            .json(&json!({"dry_run": true}))
    };
    app.send(gc(&editor)).await.error(403, "PERMISSION_DENIED");
    let collected = app.send(gc(&admin)).await;
    assert_eq!(collected.status, 200, "{}", collected.body);
    assert_eq!(collected.body["dry_run"], true);
}

#[tokio::test]
async fn the_token_exchange_refuses_clearly_and_safely() {
    let app = spawn_with_tokens(false, HOUR).await;
    let good = key(&app, "svc", Some(("default", Role::Edit))).await;
    let json_body = app
        .send(app.http.post(app.url("/oauth/token")).json(&json!({
            "grant_type": "client_credentials", "client_secret": good, "scope": "default"
        })))
        .await;
    assert_eq!(json_body.status, 200, "{}", json_body.body);
    assert_eq!(json_body.body["expires_in"], 3600);
    assert!(json_body.body["tracking_uri"]
        .as_str()
        .unwrap()
        .starts_with("http://"));

    let (key_id, _) = keys::parse(&good).unwrap();
    let wrong_secret = format!("ffk_{key_id}_not-the-secret");
    for bad in [wrong_secret.as_str(), "ffk_aaaaaaaaaaaa_x", "garbage", ""] {
        let answer = exchange(&app, bad, "default").await;
        assert_eq!(answer.status, 401, "{bad}: {}", answer.body);
        assert!(!answer.body.to_string().contains(bad) || bad.is_empty());
    }
    let grant = app
        .send(
            app.http
                .post(app.url("/oauth/token"))
                .form(&[("grant_type", "password")]),
        )
        .await;
    grant.error(400, "INVALID_PARAMETER_VALUE");
    let no_workspaces = exchange(&app, &good, "team-a").await;
    no_workspaces.error(400, "INVALID_PARAMETER_VALUE");

    assert!(app.store.revoke_key(key_id).await.unwrap());
    let revoked = exchange(&app, &good, "default").await;
    revoked.error(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_401_with_a_bearer_challenge() {
    let app = spawn_with_tokens(false, Duration::from_secs(1)).await;
    let editor_key = key(&app, "editor", Some(("default", Role::Edit))).await;
    let short = token(&app, &editor_key, "default").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = search_experiments(&app)
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("expired") && message.contains("/oauth/token"),
        "{message}"
    );

    let app = spawn_with_tokens(false, HOUR).await;
    let editor_key = key(&app, "editor", Some(("default", Role::Edit))).await;
    let live = token(&app, &editor_key, "default").await;
    let (key_id, _) = keys::parse(&editor_key).unwrap();
    app.store.revoke_key(key_id).await.unwrap();
    // What every replica's refresher does within 15 s.
    let access = app.access.as_ref().unwrap();
    access.refresh(app.store.as_ref()).await.unwrap();
    let dead = app.send(search_experiments(&app).bearer_auth(&live)).await;
    dead.error(401, "UNAUTHENTICATED");
    let garbage = app
        .send(search_experiments(&app).bearer_auth("not.a.token"))
        .await;
    garbage.error(401, "UNAUTHENTICATED");
    let huge = app
        .send(search_experiments(&app).bearer_auth("x".repeat(6000)))
        .await;
    huge.error(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_token_is_bound_to_its_workspace() {
    let app = spawn_with_tokens(true, HOUR).await;
    for name in ["team-a", "team-b"] {
        app.store.ensure_principal("ops", true).await.unwrap();
        let admin = token(&app, &key(&app, "ops", None).await, "default").await;
        let created = app
            .send(
                app.http
                    .post(app.url("/api/3.0/mlflow/workspaces"))
                    .bearer_auth(&admin)
                    .json(&json!({ "name": name })),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let a_key = key(&app, "alice", Some(("team-a", Role::Manage))).await;
    let a_token = token(&app, &a_key, "team-a").await;
    let in_a = app
        .send(
            create_experiment(&app, "x")
                .bearer_auth(&a_token)
                .header("X-MLFLOW-WORKSPACE", "team-a"),
        )
        .await;
    assert_eq!(in_a.status, 200, "{}", in_a.body);
    let by_prefix = app
        .send(
            app.http
                .get(app.url("/w/team-a/api/2.0/mlflow/experiments/search?max_results=5"))
                .bearer_auth(&a_token),
        )
        .await;
    assert_eq!(by_prefix.status, 200, "{}", by_prefix.body);
    for request in [
        create_experiment(&app, "y").header("X-MLFLOW-WORKSPACE", "team-b"),
        app.http
            .get(app.url("/w/team-b/api/2.0/mlflow/experiments/search?max_results=5")),
        search_experiments(&app),
    ] {
        let answer = app.send(request.bearer_auth(&a_token)).await;
        let message = answer.error(403, "PERMISSION_DENIED");
        assert!(
            message.contains("token is for workspace 'team-a'"),
            "{message}"
        );
    }
    let catalog = app
        .send(
            app.http
                .post(app.url("/api/3.0/mlflow/workspaces"))
                .bearer_auth(&a_token)
                .json(&json!({"name": "team-c"})),
        )
        .await;
    catalog.error(403, "PERMISSION_DENIED");
    let no_role = exchange(&app, &a_key, "team-b").await;
    no_role.error(403, "PERMISSION_DENIED");
    let unknown = exchange(&app, &a_key, "team-z").await;
    unknown.error(404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn guessing_a_keys_secret_is_rate_limited() {
    let app = spawn_with_tokens(false, HOUR).await;
    let good = key(&app, "svc", Some(("default", Role::Read))).await;
    let (key_id, _) = keys::parse(&good).unwrap();
    let guess = format!("ffk_{key_id}_guess");
    let mut limited = None;
    for _ in 0..40 {
        let response = app
            .http
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_secret", &guess),
            ])
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 401);
    }
    let response = limited.expect("the 31st try is refused");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], "REQUEST_LIMIT_EXCEEDED");
    // The right secret for that key waits too: the limit is the key's.
    exchange(&app, &good, "default")
        .await
        .error(429, "REQUEST_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn multipart_part_urls_carry_their_own_signature() {
    let app = spawn_with_tokens(false, HOUR).await;
    let editor = token(
        &app,
        &key(&app, "editor", Some(("default", Role::Edit))).await,
        "default",
    )
    .await;
    let created = app
        .send(
            app.http
                .post(app.url("/api/2.0/mlflow-artifacts/mpu/create/0/r/artifacts"))
                .bearer_auth(&editor)
                .json(&json!({"path": "/local/big.bin", "num_parts": 2})),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let urls: Vec<String> = created.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["url"].as_str().unwrap().to_string())
        .collect();
    assert!(urls.iter().all(|u| u.contains("signature=")));
    let put = |url: String| app.http.put(url).body(vec![7u8; 1024]).send();
    // As the stock client sends them: no credentials, the URL is enough.
    let ok = put(urls[0].clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let altered = [
        urls[1].replace("part_number=2", "part_number=3"),
        urls[1].replace("signature=", "signature=x"),
        urls[1].replace("big.bin", "other.bin"),
        urls[1].split("&expires").next().unwrap().to_string(),
    ];
    for url in altered {
        let refused = put(url.clone()).await.unwrap();
        assert_eq!(refused.status(), 403, "{url}");
    }
}

#[tokio::test]
async fn writes_and_refusals_are_audited_for_managers() {
    let app = spawn_with_tokens(false, HOUR).await;
    let manager = token(
        &app,
        &key(&app, "boss", Some(("default", Role::Manage))).await,
        "default",
    )
    .await;
    let reader = token(
        &app,
        &key(&app, "reader", Some(("default", Role::Read))).await,
        "default",
    )
    .await;
    let created = app
        .send(create_experiment(&app, "audited").bearer_auth(&manager))
        .await;
    assert_eq!(created.status, 200);
    app.send(create_experiment(&app, "refused").bearer_auth(&reader))
        .await
        .error(403, "PERMISSION_DENIED");
    app.send(create_experiment(&app, "anonymous"))
        .await
        .error(401, "UNAUTHENTICATED");
    app.send(search_experiments(&app).bearer_auth(&reader))
        .await;

    let read = |token: String| {
        let app = &app;
        async move {
            app.send(
                app.http
                    .get(app.url("/api/3.0/ferroflow/audit?max_results=2"))
                    .bearer_auth(token),
            )
            .await
        }
    };
    // The writer is asynchronous: wait for it.
    let mut page = read(manager.clone()).await;
    for _ in 0..50 {
        if page.body["events"].as_array().is_some_and(|e| e.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        page = read(manager.clone()).await;
    }
    let events = page.body["events"].as_array().unwrap();
    // Newest first: the anonymous 401, then the reader's 403.
    assert_eq!(events[0]["outcome"], 401);
    assert!(events[0].get("principal").is_none());
    assert_eq!(events[1]["outcome"], 403);
    assert_eq!(events[1]["principal"], "reader");
    assert_eq!(
        events[1]["action"],
        "POST /api/2.0/mlflow/experiments/create"
    );
    let token = page.body["next_page_token"].as_str().unwrap().to_string();
    let next = app
        .send(
            app.http
                .get(app.url(&format!(
                    "/api/3.0/ferroflow/audit?max_results=10&page_token={token}"
                )))
                .bearer_auth(&manager),
        )
        .await;
    let older = next.body["events"].as_array().unwrap();
    assert_eq!(older[0]["principal"], "boss");
    assert_eq!(older[0]["outcome"], 200);
    assert!(older
        .iter()
        .all(|e| e["action"] != "GET /api/2.0/mlflow/experiments/search"));
    read(reader).await.error(403, "PERMISSION_DENIED");
}

#[tokio::test]
async fn managers_make_and_revoke_their_workspaces_keys_over_rest() {
    let app = spawn_with_tokens(false, HOUR).await;
    let manager = token(
        &app,
        &key(&app, "boss", Some(("default", Role::Manage))).await,
        "default",
    )
    .await;
    let created = app
        .send(
            app.http
                .post(app.url("/api/3.0/ferroflow/keys"))
                .bearer_auth(&manager)
                .json(&json!({"principal": "ci-bot", "role": "EDIT"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let new_key = created.body["key"].as_str().unwrap().to_string();
    let key_id = created.body["key_id"].as_str().unwrap().to_string();
    let bot = token(&app, &new_key, "default").await;
    let wrote = app
        .send(create_experiment(&app, "by-bot").bearer_auth(&bot))
        .await;
    assert_eq!(wrote.status, 200, "{}", wrote.body);
    let listed = app
        .send(
            app.http
                .get(app.url("/api/3.0/ferroflow/keys"))
                .bearer_auth(&manager),
        )
        .await;
    let text = listed.body.to_string();
    assert!(text.contains(&key_id) && !text.contains(&new_key), "{text}");
    let admin_key = app
        .send(
            app.http
                .post(app.url("/api/3.0/ferroflow/keys"))
                .bearer_auth(&manager)
                .json(&json!({"principal": "sneaky", "admin": true})),
        )
        .await;
    admin_key.error(403, "PERMISSION_DENIED");
    let revoked = app
        .send(
            app.http
                .delete(app.url(&format!("/api/3.0/ferroflow/keys/{key_id}")))
                .bearer_auth(&manager),
        )
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    exchange(&app, &new_key, "default")
        .await
        .error(401, "UNAUTHENTICATED");

    // A deleted principal's keys stop working too.
    let root = token(&app, &key(&app, "root", None).await, "default").await;
    let doomed_key = key(&app, "doomed", Some(("default", Role::Read))).await;
    let doomed = token(&app, &doomed_key, "default").await;
    let deleted = app
        .send(
            app.http
                .delete(app.url("/api/3.0/ferroflow/principals/doomed"))
                .bearer_auth(&root),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    exchange(&app, &doomed_key, "default")
        .await
        .error(401, "UNAUTHENTICATED");
    app.access
        .as_ref()
        .unwrap()
        .refresh(app.store.as_ref())
        .await
        .unwrap();
    app.send(search_experiments(&app).bearer_auth(&doomed))
        .await
        .error(401, "UNAUTHENTICATED");
}

/// The session cookie's `name=value` from a sign-in answer.
fn session_cookie(response: &reqwest::Response) -> (String, String) {
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let pair = set_cookie.split(';').next().unwrap().to_string();
    (pair, set_cookie)
}

#[tokio::test]
async fn a_browser_signs_in_with_a_key_and_acts_only_from_its_own_pages() {
    let app = spawn_with_tokens(false, Duration::from_secs(4)).await;
    let key = key(&app, "browser", Some(("default", Role::Edit))).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let origin = app.base.clone();

    let ui = no_redirects.get(app.url("/")).send().await.unwrap();
    assert_eq!(
        (ui.status().as_u16(), &ui.headers()["location"]),
        (303, &"signin".parse().unwrap())
    );
    let page = no_redirects.get(app.url("/signin")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains(r#"name="api_key""#));

    let wrong = no_redirects
        .post(app.url("/signin"))
        .header("origin", &origin)
        .form(&[("api_key", "ffk_not_a_key")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let elsewhere = no_redirects
        .post(app.url("/signin"))
        .header("origin", "https://evil.example")
        .form(&[("api_key", key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 403);

    let signed_in = no_redirects
        .post(app.url("/signin"))
        .header("origin", &origin)
        .form(&[("api_key", key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "./");
    let (cookie, attributes) = session_cookie(&signed_in);
    assert!(attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict"));
    assert!(!attributes.contains("Secure"), "no TLS here");

    let with_cookie = |request: RequestBuilder| request.header("cookie", &cookie);
    let read = app.send(with_cookie(search_experiments(&app))).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let from_elsewhere = app
        .send(with_cookie(create_experiment(&app, "csrf")).header("origin", "https://evil.example"))
        .await;
    assert!(from_elsewhere
        .error(403, "PERMISSION_DENIED")
        .to_lowercase()
        .contains("origin"));
    let no_origin = app
        .send(with_cookie(create_experiment(&app, "csrf2")))
        .await;
    no_origin.error(403, "PERMISSION_DENIED");
    let own_page = app
        .send(with_cookie(create_experiment(&app, "mine")).header("origin", &origin))
        .await;
    assert_eq!(own_page.status, 200, "{}", own_page.body);

    // Past half its life, a request in use renews the session.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let renewed = with_cookie(search_experiments(&app)).send().await.unwrap();
    assert_eq!(renewed.status(), 200);
    let (next_cookie, _) = session_cookie(&renewed);
    assert_ne!(next_cookie, cookie);

    let out = no_redirects
        .post(app.url("/signout"))
        .header("cookie", &next_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(session_cookie(&out).1.contains("Max-Age=0"));
}
