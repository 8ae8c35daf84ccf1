package verdict

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Table layout. One partition per image (repository@digest) holds the current
// verdict (sk VERDICT), an audit item per change (sk AUDIT#...), and the
// short-lived lease that serialises signet's workers on that digest (sk LOCK).
// The by-digest index finds every repository's verdict for a digest.
const (
	attrPK       = "pk"
	attrSK       = "sk"
	attrGSI      = "gsiDigest"
	skVerdict    = "VERDICT"
	skLock       = "LOCK"
	auditPrefix  = "AUDIT#"
	DigestIndex  = "by-digest"
	maxRecordTry = 8
)

// DynamoAPI is the part of the DynamoDB client the store uses.
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// DynamoStore keeps verdicts in a DynamoDB table.
type DynamoStore struct {
	api   DynamoAPI
	table string
	now   func() time.Time
}

var _ Store = (*DynamoStore)(nil)

// NewDynamoStore returns a store on table, through api.
func NewDynamoStore(api DynamoAPI, table string) *DynamoStore {
	return &DynamoStore{api: api, table: table, now: time.Now}
}

// Key returns the partition key of an image's items.
func Key(repository, digest string) string { return "IMG#" + repository + "@" + digest }

func itemKey(repository, digest, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: Key(repository, digest)},
		attrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

// Get returns the verdict for repository and digest, or ErrNotFound.
func (s *DynamoStore) Get(ctx context.Context, repository, digest string) (Verdict, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            itemKey(repository, digest, skVerdict),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Verdict{}, fmt.Errorf("reading verdict for %s@%s: %w", repository, digest, err)
	}
	if len(out.Item) == 0 {
		return Verdict{}, fmt.Errorf("%s@%s: %w", repository, digest, ErrNotFound)
	}
	var v Verdict
	if err := attributevalue.UnmarshalMap(out.Item, &v); err != nil {
		return Verdict{}, fmt.Errorf("decoding verdict for %s@%s: %w", repository, digest, err)
	}
	return v, nil
}

// ByDigest returns the verdicts for digest in every repository.
func (s *DynamoStore) ByDigest(ctx context.Context, digest string) ([]Verdict, error) {
	var vs []Verdict
	p := dynamodb.NewQueryPaginator(s.api, &dynamodb.QueryInput{
		TableName:                &s.table,
		IndexName:                aws.String(DigestIndex),
		KeyConditionExpression:   aws.String("#d = :d"),
		ExpressionAttributeNames: map[string]string{"#d": attrGSI},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":d": &types.AttributeValueMemberS{Value: digest},
		},
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("querying verdicts for %s: %w", digest, err)
		}
		var page []Verdict
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &page); err != nil {
			return nil, fmt.Errorf("decoding verdicts for %s: %w", digest, err)
		}
		vs = append(vs, page...)
	}
	return vs, nil
}

// Record writes v unless the stored verdict already says the same thing or
// comes from a newer event. Each change is conditional on the revision it read
// and leaves an audit item, so duplicate and concurrent deliveries of one event
// converge to a single verdict and a single audit entry.
func (s *DynamoStore) Record(ctx context.Context, v Verdict) (Verdict, bool, error) {
	if !v.Outcome.Valid() {
		return Verdict{}, false, fmt.Errorf("recording verdict for %s@%s: invalid outcome %q", v.Repository, v.Digest, v.Outcome)
	}
	for range maxRecordTry {
		cur, err := s.Get(ctx, v.Repository, v.Digest)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Verdict{}, false, err
		}
		next := v
		if exists {
			// A push and a delete race: the newer event decides. (Pushes of
			// one digest are decided over all its tags, so their order
			// does not matter.)
			if (cur.Outcome == Deleted || v.Outcome == Deleted) && cur.EventTime.After(v.EventTime) && !sameDecision(cur, v) {
				return cur, false, nil
			}
			next.Tags = mergeTags(cur.Tags, v.Tags)
			if cur.Outcome != Deleted && v.Outcome != Deleted && sameDecision(cur, v) && len(next.Tags) == len(cur.Tags) {
				return cur, false, nil
			}
			if v.Outcome == Deleted && cur.Outcome == Deleted {
				return cur, false, nil
			}
			if v.Outcome == Deleted { // keep what was known about the image
				keep := cur
				keep.Outcome, keep.Reason, keep.Mode = Deleted, v.Reason, v.Mode
				keep.EventID, keep.EventTime, keep.SignetVersion = v.EventID, v.EventTime, v.SignetVersion
				next = keep
			}
			next.Revision = cur.Revision + 1
		} else {
			next.Tags = mergeTags(nil, v.Tags)
			next.Revision = 1
		}
		next.UpdatedAt = s.now().UTC()
		ok, err := s.put(ctx, next, exists, cur.Revision)
		if err != nil {
			return Verdict{}, false, err
		}
		if ok {
			return next, true, nil
		}
		// Someone else changed it between our read and write: read again.
	}
	return Verdict{}, false, fmt.Errorf("recording verdict for %s@%s: too much contention", v.Repository, v.Digest)
}

// put writes v conditionally on the revision read, then its audit item.
// It reports false when the condition failed.
func (s *DynamoStore) put(ctx context.Context, v Verdict, exists bool, prevRevision int64) (bool, error) {
	item, err := attributevalue.MarshalMap(v)
	if err != nil {
		return false, fmt.Errorf("encoding verdict for %s@%s: %w", v.Repository, v.Digest, err)
	}
	item[attrPK] = &types.AttributeValueMemberS{Value: Key(v.Repository, v.Digest)}
	item[attrSK] = &types.AttributeValueMemberS{Value: skVerdict}
	item[attrGSI] = &types.AttributeValueMemberS{Value: v.Digest}
	in := &dynamodb.PutItemInput{TableName: &s.table, Item: item}
	if exists {
		in.ConditionExpression = aws.String("revision = :r")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{
			":r": &types.AttributeValueMemberN{Value: strconv.FormatInt(prevRevision, 10)},
		}
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(pk)")
	}
	if _, err := s.api.PutItem(ctx, in); err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return false, nil
		}
		return false, fmt.Errorf("writing verdict for %s@%s: %w", v.Repository, v.Digest, err)
	}
	// The audit item is keyed by revision, so a retried write cannot add a second one.
	audit, err := attributevalue.MarshalMap(v)
	if err != nil {
		return false, fmt.Errorf("encoding audit for %s@%s: %w", v.Repository, v.Digest, err)
	}
	audit[attrPK] = item[attrPK]
	audit[attrSK] = &types.AttributeValueMemberS{Value: fmt.Sprintf("%s%010d", auditPrefix, v.Revision)}
	if _, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: audit}); err != nil {
		return false, fmt.Errorf("writing audit for %s@%s: %w", v.Repository, v.Digest, err)
	}
	return true, nil
}

// History returns the audit trail of an image, oldest first.
func (s *DynamoStore) History(ctx context.Context, repository, digest string) ([]Verdict, error) {
	var vs []Verdict
	p := dynamodb.NewQueryPaginator(s.api, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :a)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: Key(repository, digest)},
			":a":  &types.AttributeValueMemberS{Value: auditPrefix},
		},
		ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading history of %s@%s: %w", repository, digest, err)
		}
		var page []Verdict
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &page); err != nil {
			return nil, fmt.Errorf("decoding history of %s@%s: %w", repository, digest, err)
		}
		vs = append(vs, page...)
	}
	return vs, nil
}

// Lock takes the lease on an image, waiting with backoff while another worker
// holds it, until ctx ends. The lease expires after ttl in case its holder
// dies. The returned function releases it.
func (s *DynamoStore) Lock(ctx context.Context, repository, digest string, ttl time.Duration) (func(context.Context) error, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	owner := hex.EncodeToString(b[:])
	wait := 50 * time.Millisecond
	for {
		now := s.now()
		key := itemKey(repository, digest, skLock)
		item := map[string]types.AttributeValue{
			attrPK:    key[attrPK],
			attrSK:    key[attrSK],
			"owner":   &types.AttributeValueMemberS{Value: owner},
			"expires": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(ttl).UnixMilli(), 10)},
			// ttl lets DynamoDB's TTL sweep stale leases where it is enabled.
			"ttl": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(ttl+time.Hour).Unix(), 10)},
		}
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           &s.table,
			Item:                item,
			ConditionExpression: aws.String("attribute_not_exists(pk) OR expires < :now"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
			},
		})
		if err == nil {
			return func(ctx context.Context) error {
				_, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
					TableName:                &s.table,
					Key:                      key,
					ConditionExpression:      aws.String("#o = :o"),
					ExpressionAttributeNames: map[string]string{"#o": "owner"},
					ExpressionAttributeValues: map[string]types.AttributeValue{
						":o": &types.AttributeValueMemberS{Value: owner},
					},
				})
				var ccf *types.ConditionalCheckFailedException
				if err != nil && !errors.As(err, &ccf) {
					return fmt.Errorf("releasing lease on %s@%s: %w", repository, digest, err)
				}
				return nil
			}, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return nil, fmt.Errorf("taking lease on %s@%s: %w", repository, digest, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s@%s: %w: %w", repository, digest, ErrLocked, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

// CreateTable creates the verdict table with its by-digest index, on demand,
// and waits for it. A table that already exists is left as it is.
func CreateTable(ctx context.Context, api *dynamodb.Client, table string) error {
	s := func(n string) *string { return aws.String(n) }
	_, err := api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   s(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: s(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: s(attrSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: s(attrGSI), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: s("repository"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: s(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: s(attrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: s(DigestIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: s(attrGSI), KeyType: types.KeyTypeHash},
				{AttributeName: s("repository"), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("creating table %s: %w", table, err)
	}
	w := dynamodb.NewTableExistsWaiter(api, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: s(table)}, time.Minute); err != nil {
		return fmt.Errorf("waiting for table %s: %w", table, err)
	}
	return nil
}
